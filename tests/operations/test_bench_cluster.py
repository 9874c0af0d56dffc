"""The benchmarks that measure one Redis server say so on a Redis Cluster, before they
start anything, rather than print one node's figures as the cluster's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_load_bench_refuses_a_cluster_and_names_what_runs_there() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--users", "10"],
        # Nothing listens there: a bench that got as far as Redis would fail otherwise.
        env={**clean, "PICTOGRAPH_REDIS_CLUSTER": "true",
             "PICTOGRAPH_BENCH_LOAD_REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bench/load.py does not run on a Redis Cluster" in done.stderr
    assert "bench/soak.py" in done.stderr  # what does
    assert "Traceback" not in done.stderr

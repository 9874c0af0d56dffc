"""bench/revocation.py at a tiny size, so that no refactor breaks it unseen."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_DATABASE_URL, PROCESS_REDIS_URL, REDIS_CLUSTER, require_services

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, **env: str) -> str:
    # The bench picks its backend from PICTOGRAPH_* variables: none of the caller's.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "revocation.py"),
                           "--pairs", "4", "--rounds", "2", *args],
                          capture_output=True, text=True, timeout=300, env={**clean, **env},
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    return done.stdout


def test_the_revocation_bench_runs_on_the_embedded_default() -> None:
    out = run_bench()
    assert re.search(r"unfollow, WAIT off +p50", out), out
    assert "the embedded fakeredis has no replicas" in out
    assert re.search(r"going private, lease \(100 ms\) +p50", out), out
    assert "target: the lease adds <= 0 ms to going private at p50 (+1 ms of noise)" in out


async def test_the_revocation_bench_runs_on_postgres_and_redis() -> None:
    await require_services()
    # Its Redis database is flushed before and after: the one for tests' processes (on a
    # cluster run, the run's cluster, whose masters have replicas).
    cluster = {"PICTOGRAPH_REDIS_CLUSTER": "true"} if REDIS_CLUSTER else {}
    out = run_bench("--services", PICTOGRAPH_BENCH_REDIS_URL=PROCESS_REDIS_URL,
                    PICTOGRAPH_BENCH_ADMIN_URL=ADMIN_DATABASE_URL, **cluster)
    assert "unfollow, WAIT auto" in out and "unfollow, WAIT off" in out, out
    if REDIS_CLUSTER:
        met = re.search(r"target: one WAIT per master an unfollow fenced \(1 or 2\) +MET", out)
        assert met, out
    else:
        assert "not sent: no master has a replica online" in out, out

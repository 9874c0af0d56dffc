"""bench/redis_purge.py at a tiny size, so that no refactor breaks it unseen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.redis_server import REDIS_SERVER, redis_server

ROOT = Path(__file__).resolve().parents[2]


def test_the_purge_bench_runs_and_keeps_the_stream(tmp_path: Path) -> None:
    with redis_server(tmp_path / "check"):  # skips (or fails in CI) without redis-server
        pass
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "redis_purge.py"),
                           "--keys", "300"], capture_output=True, text=True, timeout=120,
                          env={"PATH": str(Path(REDIS_SERVER).parent)}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "300 / 1 (the stream)" in done.stdout, done.stdout
    assert "keys per second" in done.stdout

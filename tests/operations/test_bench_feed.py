"""bench/feed.py at its tiny size on both backends, so that no refactor breaks it unseen
(it once stopped at a TypeError for a month: the events had become typed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_DATABASE_URL, PROCESS_REDIS_URL, require_services

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, **env: str) -> str:
    # The bench picks its backend from PICTOGRAPH_* variables: none of the caller's.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "feed.py"), "--tiny", *args],
                          capture_output=True, text=True, timeout=300, env={**clean, **env},
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    return done.stdout


def test_the_feed_bench_runs_on_the_embedded_default() -> None:
    out = run_bench("--profile", "5")
    assert "fan-out push_to_home, 30 followers" in out, out
    # Issue 24's fan-out figures, each with its target and verdict.
    assert re.search(r"target: >= 100,000 feed entries/s per worker +(MET|NOT MET)", out)
    assert "READY -> the fan-out worker's push_to_home begins" in out
    assert "READY -> in the last follower's feed" in out
    assert re.search(r"target: p99 < 500 ms +(MET|NOT MET)", out)
    assert "cProfile of 2 push_to_home calls" in out  # --profile
    assert "not measured here" in out  # fakeredis has no MEMORY USAGE


async def test_the_feed_bench_runs_on_postgres_and_redis_and_meets_the_memory_target(
) -> None:
    await require_services()
    # Its Redis database is flushed before and after: the one for tests' processes.
    out = run_bench("--services", PICTOGRAPH_BENCH_REDIS_URL=PROCESS_REDIS_URL,
                    PICTOGRAPH_BENCH_ADMIN_URL=ADMIN_DATABASE_URL)
    assert "fan-out push_to_home, 30 followers" in out, out
    # Redis's own count of the fan-out's script calls: followers go 100 to a call on one
    # server, so each of the (at least two) posts took one call.
    found = re.search(r"Redis per follower \(INFO commandstats, EVALSHA\) +[\d.]+ us per "
                      r"follower \(([\d,]+) script calls for ([\d,]+) followers", out)
    assert found, out
    calls, shares = (int(found[i].replace(",", "")) for i in (1, 2))
    assert shares >= 2 * 30 and 2 <= calls < shares, out
    assert re.search(r"target: 800-entry feed <= 16,000 bytes +MET", out), out

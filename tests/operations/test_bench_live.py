"""bench/live.py at a tiny size on both backends, so that no refactor breaks it unseen:
it runs to the end, every subscriber hears every post (a count, judged here), and each
figure is printed with its target. (Its latency and memory targets are judged by the
bench at its full size, not here.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_DATABASE_URL, PROCESS_REDIS_URL, require_services

ROOT = Path(__file__).resolve().parents[2]
TARGETS = (
    # Negative at a tiny size: READY is seen by polling, after the fan-out may be done.
    r"target: last subscriber p99 < 500 ms after READY +(?:NOT )?MET: -?[\d,]+ ms",
    r"target: memory per open subscription <= 30 KiB +(?:NOT )?MET: -?[\d,.]+ KiB",
)


def run_bench(*args: str, **env: str) -> str:
    # The bench picks its backend from PICTOGRAPH_* variables: none of the caller's.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "live.py"), *args],
                          capture_output=True, text=True, timeout=300, env={**clean, **env},
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    return done.stdout


def assert_every_delivery_made(out: str, subscribers: int) -> None:
    assert f"{subscribers}/{subscribers} subscribed" in out, out
    assert re.search(r"target: missed deliveries 0 +MET: 0 of \d+", out), out
    for target in TARGETS:
        assert re.search(target, out), (target, out)


def test_the_live_bench_runs_on_the_embedded_default() -> None:
    out = run_bench("--subscribers", "4", "--posts", "1", "--client-processes", "1")
    assert_every_delivery_made(out, 4)


async def test_the_live_bench_runs_on_two_api_processes_and_a_worker() -> None:
    await require_services()
    # Its Redis database is flushed before and after: the one for tests' processes.
    out = run_bench("--services", "--subscribers", "12", "--posts", "1",
                    "--client-processes", "2",
                    PICTOGRAPH_BENCH_REDIS_URL=PROCESS_REDIS_URL,
                    PICTOGRAPH_BENCH_ADMIN_URL=ADMIN_DATABASE_URL)
    assert_every_delivery_made(out, 12)
    assert "channels subscribed in Redis             12/12" in out or re.search(
        r"channels subscribed in Redis +12/12", out), out
    assert "serve --processes 2" in out

"""bench/live_floor.py at a tiny size, so that no refactor breaks it unseen: the floor
app serves the subscribers bench/live.py's clients speak to, every subscriber hears
every message (a count, judged here), and both of bench/live.py's targets are printed
against the floor. (The floor's figures are judged by the bench at full size.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROCESS_REDIS_URL, require_services

ROOT = Path(__file__).resolve().parents[2]


def run_floor_bench(*args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "live_floor.py"), *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**clean, "PICTOGRAPH_BENCH_REDIS_URL": PROCESS_REDIS_URL})
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    return done.stdout


async def test_the_floor_bench_serves_every_subscriber_every_message() -> None:
    await require_services()
    out = run_floor_bench("--subscribers", "6", "--posts", "1", "--client-processes", "2")
    assert re.search(r"subscribers +6/6 open, 6 subscribed", out), out
    assert re.search(r"missed deliveries +0 of 6\b", out), out
    assert re.search(r"last subscriber p99 < 500 ms +(?:NOT )?MET by the floor: [\d,]+ ms",
                     out), out
    assert re.search(r"memory per subscription <= 30 KiB +(?:NOT )?MET by the floor: "
                     r"-?[\d,.]+ KiB", out), out

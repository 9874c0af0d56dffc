"""bench/celebrity.py at a tiny size, so that no refactor breaks it unseen: it runs, every
action refuses the readers' answers it must (a follow, the profiles but not the feeds),
and the commands do not grow with the readers. (Its 1 ms target is a timing, judged by
the bench, not here.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.redis_server import REDIS_SERVER, redis_server

ROOT = Path(__file__).resolve().parents[2]


def test_the_celebrity_bench_runs_and_its_commands_do_not_grow_with_readers(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path / "check"):  # skips (or fails in CI) without redis-server
        pass
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("PICTOGRAPH_")}
    env["PATH"] = f"{Path(REDIS_SERVER).parent}:{env.get('PATH', '')}"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "celebrity.py"),
                           "--readers", "5,50"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path, check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a target not met
    for action in ("post READY", "profile edit", "deletion", "follow", "going private"):
        found = re.search(rf"target: {action} +(?:NOT )?MET: commands ([\d.]+)x", done.stdout)
        assert found is not None, done.stdout
        assert float(found.group(1)) <= 1.1, (action, done.stdout)  # the same, give or take
    assert "NOT AS EXPECTED" not in done.stdout, done.stdout  # refused (or kept) as they must
    assert "profiles refused, feeds kept as expected" in done.stdout, done.stdout

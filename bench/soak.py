"""Soak: minutes of mixed traffic against two API processes and a worker, with memory.

    python bench/soak.py                  # 3 minutes, 30 users
    python bench/soak.py --duration 30    # a first look
    python bench/soak.py --users 40 --wait 0.1 0.5

What runs, all on 127.0.0.1: a throwaway PostgreSQL database, Redis database 10
(PICTOGRAPH_BENCH_SOAK_REDIS_URL; with PICTOGRAPH_REDIS_CLUSTER=true it names any node
of a Redis Cluster, which is flushed whole and used by every process), local-disk
storage in one data dir shared by two `pictograph serve --no-workers` processes and one
`pictograph worker`, with one secret key. The network is made by `pictograph seed`'s
code (power-law follows, celebrities over a lowered threshold so the feed also merges at
read time, real photos); the first --users accounts by how many they follow get a
password.

The load is locust, headless, in a process of its own (bench/soak_locustfile.py): each
locust user logs in as its own account, on the API processes in turn, and loops over
feed pages, thumbnail fetches, follow / profile / unfollow (with the photo URL refused
after the unfollow) and posting a photo (upload ticket, PUT, createPost). Rate limits
are raised out of the way: the soak measures the service, not the limiter's refusals.

Prints requests/s, p50/p99 per request type, every error (locust failures, exceptions
in the locustfile, ERROR lines in the server and worker logs, posts that did not end
READY), PASS only with none, and each process's RSS before the load and after it, with
the growth over the first half and the second half of the run: a leak keeps growing in
the second half, warm caches do not. Exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm

from bench._harness import on_cluster, print_table, throwaway_services
from bench._processes import (
    child,
    cpu_seconds,
    free_port,
    ready_server,
    rss_kib,
    settle,
    tail,
)
from pictograph.db import apply_migrations, using_database
from pictograph.models import Follow, Post, PostStatus, User
from pictograph.resources import Resources, open_resources
from pictograph.schema.node import encode_global_id
from pictograph.seed import DEMO_PASSWORD, SeedReport, seed
from pictograph.settings import Settings
from tests.support.processes import process_env

REDIS_URL = os.environ.get("PICTOGRAPH_BENCH_SOAK_REDIS_URL", "redis://127.0.0.1:6379/10")
LOCUSTFILE = Path(__file__).with_name("soak_locustfile.py")
SAMPLE_EVERY = 10.0  # seconds between memory samples
TARGETS_PER_ACCOUNT = 30  # people each account may follow and unfollow
SETTLE_TIMEOUT = 60.0  # seconds the worker gets to finish the soak's posts
UNLIMITED = "1000000/minute"
LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b")


@dataclass
class Process:
    name: str
    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS KiB)
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    def sample(self, at: float) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            self.samples.append((at, rss_kib(self.pid)))

    def cpu(self) -> float:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            return cpu_seconds(self.pid)
        return 0.0


# The network and who logs in.

def _environment(data_dir: Path, database_url: str, threshold: int) -> dict[str, str]:
    """Every process's PICTOGRAPH_* settings (the seeding in this process uses the same)."""
    limits = {f"PICTOGRAPH_{name.upper()}": UNLIMITED
              for name in Settings.model_fields if name.startswith("rate_limit_")}
    # process_env passes on no PICTOGRAPH_* of this environment: the cluster flag goes
    # explicitly, or the processes would talk to one node of a cluster as to a whole Redis.
    return process_env(data_dir, PICTOGRAPH_DATABASE_URL=database_url,
                       PICTOGRAPH_REDIS_URL=REDIS_URL,
                       PICTOGRAPH_REDIS_CLUSTER="true" if on_cluster() else "false",
                       PICTOGRAPH_SECRET_KEY=secrets.token_urlsafe(32),
                       PICTOGRAPH_CELEBRITY_THRESHOLD=str(threshold), **limits)


def _settings_from(env: dict[str, str]) -> Settings:
    prefix = "PICTOGRAPH_"
    return Settings(**{k.removeprefix(prefix).lower(): v for k, v in env.items()
                       if k.startswith(prefix)}, run_workers=False)


async def _accounts(resources: Resources, report: SeedReport, count: int,
                    ) -> list[dict[str, Any]]:
    """The demo accounts, then the public accounts that follow the most people, each
    with the demo password and a list of public accounts it does not follow."""
    rng = random.Random(3)
    stars = set(report.celebrities)
    with using_database(resources.database):
        demo = await User.filter(username__in=report.demo_accounts).order_by("username")
        others = await (User.filter(is_private=False)
                        .exclude(username__in=[*report.demo_accounts, *stars])
                        .order_by("-following_count", "id").limit(max(0, count - len(demo))))
        chosen = [*demo, *others][:count]
        if len(chosen) < count:
            raise SystemExit(f"the network has only {len(chosen)} public accounts for "
                             f"{count} users: seed more (--seed-users)")
        # Any argon2 hash of the demo password verifies it, whoever's row it is in.
        await User.filter(id__in=[u.id for u in others]).update(
            password_hash=demo[0].password_hash)
        pool = await (User.filter(is_private=False).exclude(username__in=stars)
                      .values_list("id", "username"))
        followed: dict[int, set[int]] = {u.id: set() for u in chosen}
        for follower, followee in await Follow.filter(
                follower_id__in=list(followed)).values_list("follower_id", "followee_id"):
            followed[follower].add(followee)
    accounts = []
    for user in chosen:
        free = [(user_id, name) for user_id, name in pool
                if user_id != user.id and user_id not in followed[user.id]]
        targets = rng.sample(free, min(TARGETS_PER_ACCOUNT, len(free)))
        accounts.append({"username": user.username,
                         "targets": [[encode_global_id("User", i), n] for i, n in targets]})
    return accounts


# Locust's files.

def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _latest(history: Path) -> dict[str, str] | None:
    rows = [r for r in _read_csv(history) if r.get("Name") == "Aggregated"]
    return rows[-1] if rows else None


def _ms(value: str) -> str:
    return "-" if value in ("", "N/A") else f"{float(value):,.0f} ms"


# Logs.

def _problems(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if LOG_PROBLEM.search(line)]


def _warnings(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if re.search(r"\bWARNING\b", line)]


# The run.

async def _settle_posts(resources: Resources, after_id: int) -> dict[str, int]:
    """Statuses of the posts the soak made, once none is PROCESSING (or the wait ends)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    with using_database(resources.database):
        while True:
            rows = await Post.filter(id__gt=after_id).values_list("status", flat=True)
            counts = {status.value: 0 for status in PostStatus}
            for status in rows:
                counts[PostStatus(status).value] += 1
            if not counts[PostStatus.PROCESSING.value] or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(1.0)


async def _drive(processes: list[Process], locust_args: list[str], locust_env: dict[str, str],
                 log: Path, history: Path, duration: int) -> tuple[Process, float]:
    """Runs locust to its end with a progress bar; samples memory before the load, every
    SAMPLE_EVERY s of it and after it. Returns locust's process and the load's seconds."""
    for process in processes:
        await settle(process.pid)  # start-up done (imports, pools), so it is not growth
    for process in processes:
        process.cpu_start = process.cpu()
        process.sample(0.0)
    started: float | None = None  # when locust's first statistics appear: load begins
    elapsed = 0.0
    with child(locust_args, locust_env, log) as locust:
        # The load tool shares the machine's cores: its own cost is reported too.
        load = Process("locust (load)", locust.pid)
        load.cpu_start = load.cpu()
        next_sample = SAMPLE_EVERY
        with tqdm(total=duration, desc="soak", unit="s", dynamic_ncols=True) as bar:
            while locust.poll() is None:
                await asyncio.sleep(1.0)
                load.cpu_end = load.cpu() or load.cpu_end  # 0 once locust has exited
                latest = _latest(history)
                if latest is None:
                    continue  # locust is still starting
                if started is None:
                    started = time.monotonic()
                    load.sample(0.0)
                elapsed = time.monotonic() - started
                bar.update(max(0, min(duration, int(elapsed)) - bar.n))
                bar.set_postfix(rps=f"{float(latest['Requests/s']):.0f}",
                                failures=latest["Total Failure Count"], p50=_ms(latest["50%"]))
                if next_sample <= elapsed < duration:
                    for process in [*processes, load]:
                        process.sample(elapsed)
                    next_sample += SAMPLE_EVERY
    if started is not None:
        elapsed = time.monotonic() - started
    for process in processes:
        process.sample(elapsed)
        process.cpu_end = process.cpu()
    return load, elapsed


async def main(duration: int, users: int, wait: tuple[float, float], seed_users: int,
               seed_posts: int) -> bool:
    threshold = max(50, seed_users // 5)
    with tempfile.TemporaryDirectory(prefix="pictograph-soak-") as tmp:
        tmp_path = Path(tmp)
        data_dir = tmp_path / "data"
        logs = {name: tmp_path / f"{name}.log" for name in ("api1", "api2", "worker", "locust")}
        async with throwaway_services(REDIS_URL) as database_url:
            env = _environment(data_dir, database_url, threshold)
            settings = _settings_from(env)
            await apply_migrations(database_url)
            async with open_resources(settings) as resources:
                await resources.storage.ensure_bucket()
                report = await seed(resources, users=seed_users, posts=seed_posts,
                                    celebrities=5, progress=True)
                accounts = await _accounts(resources, report, users)
                with using_database(resources.database):
                    last_seeded = (await Post.all().order_by("-id").first())
                after_id = last_seeded.id if last_seeded else 0

                async with contextlib.AsyncExitStack() as stack:
                    processes: list[Process] = []
                    hosts = []
                    for name in ("api1", "api2"):
                        base = f"http://127.0.0.1:{free_port()}"
                        args = [sys.executable, "-m", "pictograph", "serve", "--host",
                                "127.0.0.1", "--port", base.rsplit(":", 1)[1], "--no-workers"]
                        server = await stack.enter_async_context(ready_server(
                            args, {**env, "PICTOGRAPH_PUBLIC_BASE_URL": base}, base,
                            logs[name]))
                        processes.append(Process(f"API process {name[-1]}", server.pid))
                        hosts.append(base)
                    worker = stack.enter_context(child(
                        [sys.executable, "-m", "pictograph", "worker"], env, logs["worker"]))
                    await asyncio.sleep(1.0)
                    if worker.poll() is not None:
                        raise SystemExit("the worker exited:\n" + tail(logs["worker"]))
                    processes.append(Process("worker process", worker.pid))

                    plan = tmp_path / "plan.json"
                    prefix = tmp_path / "locust"
                    results = tmp_path / "results.json"
                    plan.write_text(json.dumps({"hosts": hosts, "password": DEMO_PASSWORD,
                                                "wait": list(wait), "accounts": accounts,
                                                "results": str(results)}))
                    locust_args = [
                        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                        "-u", str(users), "-r", str(users), "--run-time", f"{duration}s",
                        "--stop-timeout", "10", "--csv", str(prefix), "--only-summary",
                        "--loglevel", "WARNING",
                    ]
                    locust_env = {**os.environ, "PICTOGRAPH_SOAK_PLAN": str(plan)}
                    load, seconds = await _drive(processes, locust_args, locust_env,
                                                 logs["locust"],
                                                 Path(f"{prefix}_stats_history.csv"), duration)
                    posts = await _settle_posts(resources, after_id)
                # The processes have stopped: anything they logged on the way out counts.
                outcome = json.loads(results.read_text()) if results.exists() else None
                problems = {name: _problems(logs[name]) for name in ("api1", "api2", "worker")}
                warnings = {name: _warnings(logs[name]) for name in ("api1", "api2", "worker")}
                locust_tail = tail(logs["locust"], 30)

    return _report(duration=duration, users=users, wait=wait, report=report,
                   threshold=threshold, outcome=outcome, problems=problems, warnings=warnings,
                   posts=posts, processes=[*processes, load], seconds=seconds,
                   locust_tail=locust_tail)


def _report(*, duration: int, users: int, wait: tuple[float, float], report: SeedReport,
            threshold: int, outcome: dict[str, Any] | None, problems: dict[str, list[str]],
            warnings: dict[str, list[str]], posts: dict[str, int],
            processes: list[Process], seconds: float, locust_tail: str) -> bool:
    if outcome is None:
        print("locust wrote no results; its log ends:\n" + locust_tail)
        return False
    total = outcome["total"]
    by_type = sorted(outcome["entries"], key=lambda row: -row["requests"])
    failed = total["failures"]
    raised = sum(row["count"] for row in outcome["exceptions"])
    logged = sum(len(lines) for lines in problems.values())
    bad_posts = posts[PostStatus.FAILED.value] + posts[PostStatus.PROCESSING.value]
    errors = failed + raised + logged + bad_posts
    passed = errors == 0 and total["requests"] > 0

    rows = [
        ("backend", f"PostgreSQL + {'the Redis Cluster at ' if on_cluster() else ''}"
         f"{REDIS_URL} + local disk; "
         "2 x `serve --no-workers` + 1 `worker`"),
        ("network (pictograph seed)",
         f"{report.users:,} users, {report.follows:,} follows, {report.posts:,} posts, "
         f"{len(report.celebrities)} celebrities over {threshold:,} followers; "
         f"{report.seconds:.1f} s"),
        ("load", f"locust, {users} users ({users} accounts, API processes in turn), "
         f"{wait[0]:g}-{wait[1]:g} s between tasks, {duration} s"),
        ("requests", f"{total['requests']:,} at {total['rps']:,.1f}/s; "
         f"p50 {total['p50']:,} ms, p99 {total['p99']:,} ms, max {total['max']:,.0f} ms"),
    ]
    for row in by_type:
        rows.append((f"  {row['name']}",
                     f"{row['requests']:>7,}  {row['rps']:7.1f}/s  p50 {row['p50']:>6,} ms  "
                     f"p99 {row['p99']:>6,} ms"
                     + (f"  FAILED {row['failures']}" if row["failures"] else "")))
    rows += [
        ("posts made in the soak", f"{sum(posts.values())}: " + ", ".join(
            f"{status} {count}" for status, count in posts.items())
         + f" (after up to {SETTLE_TIMEOUT:.0f} s for the worker)"),
        ("locust failures", f"{failed}"),
        ("exceptions in the locustfile", f"{raised}"),
        ("ERROR lines in server/worker logs",
         ", ".join(f"{name} {len(lines)}" for name, lines in problems.items())),
        ("WARNING lines in server/worker logs",
         ", ".join(f"{name} {len(lines)}" for name, lines in warnings.items())),
        ("ERRORS", f"{errors}  ->  {'PASS' if passed else 'FAIL'}"),
    ]
    for process in processes:
        rows.append((f"{process.name} RSS", _memory(process)))
        busy = process.cpu_end - process.cpu_start
        rows.append((f"{process.name} CPU",
                     f"{busy:,.1f} s ({busy / max(seconds, 1):.0%} of one core)"))
    print_table(f"Soak: {duration} s of mixed traffic, {users} users, 2 API processes + "
                "1 worker", rows)

    for row in sorted(outcome["errors"], key=lambda row: -row["occurrences"])[:10]:
        print(f"failure x{row['occurrences']}: {row['method']} {row['name']}: {row['error']}")
    for row in outcome["exceptions"][:5]:
        print(f"locustfile exception x{row['count']}: {row['message']}\n{row['traceback']}")
    for name, lines in problems.items():
        if lines:
            print(f"\n{name} logged {len(lines)} ERROR lines; the first:")
            print("\n".join(lines[:8]))
    for name, lines in warnings.items():
        if lines:
            print(f"\n{name} logged {len(lines)} WARNING lines; the first:")
            print("\n".join(lines[:3]))
    return passed


def _memory(process: Process) -> str:
    """Before, at the middle and at the end: steady growth in the second half is a leak."""
    samples = process.samples
    if len(samples) < 2:
        return "not sampled"
    start, end = samples[0], samples[-1]
    middle_at = (start[0] + end[0]) / 2
    middle = min(samples, key=lambda s: abs(s[0] - middle_at))
    first, second = middle[1] - start[1], end[1] - middle[1]
    return (f"{start[1] / 1024:,.1f} -> {end[1] / 1024:,.1f} MiB; first half "
            f"{first / 1024:+,.1f} MiB, second half {second / 1024:+,.1f} MiB "
            f"({len(samples)} samples)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=180, help="seconds of load")
    parser.add_argument("--users", type=int, default=30, help="simulated people at once")
    parser.add_argument("--wait", type=float, nargs=2, default=(0.2, 1.0),
                        metavar=("MIN", "MAX"), help="seconds each user waits between tasks")
    parser.add_argument("--seed-users", type=int, default=2000)
    parser.add_argument("--seed-posts", type=int, default=10000)
    args = parser.parse_args()
    if args.duration < 10 or args.users < 1 or not 0 <= args.wait[0] <= args.wait[1]:
        parser.error("--duration at least 10, --users at least 1, 0 <= --wait MIN <= MAX")
    ok = asyncio.run(main(args.duration, args.users, tuple(args.wait), args.seed_users,
                          args.seed_posts))
    raise SystemExit(0 if ok else 1)

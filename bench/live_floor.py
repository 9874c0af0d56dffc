"""The floor under bench/live.py: the same subscribers, the same two API processes, the
same libraries (Strawberry on Starlette and uvicorn), and nothing of Pictograph's.

bench/_floor_app.py serves one subscription, `feedUpdates { kind postId }`, and hands
each Redis message to all of a process's subscriptions through one shared future. No
sign-in, no token watch, no lease, no per-viewer check, no reads: what is left is what
Strawberry, graphql-core, Starlette, uvicorn and websockets cost per open subscription
and per delivery. If this floor does not meet bench/live.py's targets on a machine,
nothing Pictograph does can, short of replacing those libraries.

    python bench/live_floor.py [--subscribers 10000] [--posts 3]

Needs Redis (PICTOGRAPH_BENCH_REDIS_URL, default redis://127.0.0.1:6379/12; only the
keys floor:* are touched)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from redis.asyncio import Redis
from tqdm import tqdm

from bench._floor_app import CHANNEL, SUBSCRIBED
from bench._harness import percentile, print_table, verdict
from bench._processes import free_port, ready_server, tail
from bench.live import (
    API_PROCESSES,
    REDIS_URL,
    STEP_TIMEOUT,
    TARGET_KIB_PER_SUBSCRIPTION,
    TARGET_LAST_P99_MS,
    _api_pids,
    _clients,
    _raise_fd_limit,
    _rss,
    _settle,
)
from pictograph.serving import WEBSOCKET_OPTIONS

ROOT = Path(__file__).resolve().parents[1]


def _server_args(port: int, ws: str) -> list[str]:
    args = [sys.executable, "-m", "uvicorn", "bench._floor_app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(API_PROCESSES),
            "--ws", ws,
            "--no-access-log", "--log-level", "warning", "--lifespan", "on",
            # As `pictograph serve`: a stop waits this long at most for what is open.
            "--timeout-graceful-shutdown", "5"]
    if WEBSOCKET_OPTIONS.get("ws_per_message_deflate") is False:
        args += ["--ws-per-message-deflate", "false"]
    return args


async def _wait_subscribed(redis: Redis, count: int) -> int:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        subscribed = sum(int(n) for n in await redis.hvals(SUBSCRIBED))
        if subscribed >= count or time.monotonic() > deadline:
            return subscribed
        await asyncio.sleep(0.1)


async def main(subscribers: int, posts: int, client_processes: int, ws: str) -> None:
    fd_limit = _raise_fd_limit(subscribers // client_processes + 1)
    redis = Redis.from_url(REDIS_URL)
    await redis.delete(SUBSCRIBED)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")},
           "FLOOR_REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}
    lasts: list[float] = []
    missed = 0
    with tempfile.TemporaryDirectory(prefix="pictograph-floor-") as tmp:
        async with ready_server(_server_args(port, ws), env, base, Path(tmp) / "server.log") \
                as server:
            pids = _api_pids(server, services=True)
            url = base.replace("http://", "ws://") + "/graphql"
            async with _clients(url, ["-"] * (8 * len(pids)), 1):  # warm every process
                await asyncio.sleep(0.5)
            await _settle(pids)
            rss_before = _rss(pids)
            async with _clients(url, ["-"] * subscribers,
                                client_processes) as (clients, opened, errors):
                subscribed = await _wait_subscribed(redis, opened)
                if subscribed < opened:
                    raise SystemExit(f"{subscribed} of {opened} subscribed:\n"
                                     + tail(Path(tmp) / "server.log"))
                await _settle(pids)
                rss_subscribed = _rss(pids)
                for n in tqdm(range(posts + 1), desc="publishing", unit="post"):
                    await asyncio.sleep(0.5)
                    post_id = f"floor-{n}"
                    t0 = time.monotonic()
                    await redis.publish(CHANNEL, orjson.dumps({"postId": post_id}))
                    deadline = t0 + STEP_TIMEOUT
                    while True:
                        replies = await clients.ask(("report", post_id))
                        arrivals = [t for reply in replies for t in reply[2]]
                        if len(arrivals) >= opened or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.1)
                    if n == 0:
                        continue  # the first message warms each process's path
                    missed += opened - len(arrivals)
                    lasts.append((max(arrivals) - t0) * 1000 if arrivals else float("inf"))
    await redis.delete(SUBSCRIBED)
    await redis.aclose()
    per_socket = (rss_subscribed - rss_before) / max(opened, 1)
    last_p99 = percentile(lasts, 0.99)
    print_table(
        f"The floor: Strawberry + Starlette + uvicorn alone, {subscribers} subscribers, "
        f"{posts} messages",
        [("server", f"uvicorn --workers {API_PROCESSES} --ws {ws}, bench/_floor_app.py"),
         ("client processes / fd limit", f"{client_processes} / {fd_limit}"),
         ("subscribers", f"{opened}/{subscribers} open, {subscribed} subscribed"
          + (f"; e.g. {errors[0]}" if errors else "")),
         ("last subscriber has it, after PUBLISH",
          f"p50 {statistics.median(lasts):,.0f} ms, p99 {last_p99:,.0f} ms"),
         (f"API processes' RSS before sockets ({len(pids)})", f"{rss_before / 1024:,.1f} MiB"),
         (f"API processes' RSS with {opened} subscribed",
          f"{rss_subscribed / 1024:,.1f} MiB"),
         (f"bench/live.py's target: last subscriber p99 < {TARGET_LAST_P99_MS:.0f} ms",
          f"{verdict(last_p99 < TARGET_LAST_P99_MS)} by the floor: {last_p99:,.0f} ms"),
         ("missed deliveries", f"{missed} of {opened * posts}"),
         (f"bench/live.py's target: memory per subscription <= "
          f"{TARGET_KIB_PER_SUBSCRIPTION:.0f} KiB",
          f"{verdict(per_socket <= TARGET_KIB_PER_SUBSCRIPTION)} by the floor: "
          f"{per_socket:,.1f} KiB")])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--ws", default="auto", choices=["auto", "websockets-sansio",
                                                          "websockets", "wsproto"],
                        help="uvicorn's WebSocket implementation (`pictograph serve` "
                             "uses auto)")
    args = parser.parse_args()
    if min(args.subscribers, args.posts, args.client_processes) < 1:
        parser.error("--subscribers, --posts and --client-processes must be at least 1")
    asyncio.run(main(args.subscribers, args.posts, args.client_processes, args.ws))

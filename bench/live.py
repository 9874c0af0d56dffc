"""Live feed updates at scale: N subscribers over 2 API processes, authors they follow post.

    python bench/live.py --services    # the measured setup: PostgreSQL + Redis on
                                       # 127.0.0.1, `pictograph serve --processes 2
                                       # --no-workers` + 1 `pictograph worker`
    python bench/live.py --services --subscribers 2000 --posts 3    # a first look
    python bench/live.py               # embedded default: one process, workers in it

N users (one socket each), who all follow two authors, created straight in the database
before the servers start; the authors stay under the celebrity threshold (raised above
N here), so each post goes through the fan-out to every follower, not the celebrity
channel. The sockets are light raw WebSocket clients speaking graphql-transport-ws
(bench/_live_clients.py), spread over --client-processes processes. The authors then post
in turn through the upload ticket flow; for each post, t0 is when the post is seen READY
(its status polled every 5 ms, so t0 may be a poll and a request late: at a tiny size a
delivery can come "before" it), and every subscriber notes when its
POST_ADDED arrives. Memory per open subscription is the API processes' RSS growth / N.

Targets (issue 24): the last subscriber has the post within p99 500 ms of READY, no
delivery missed, at most 30 KiB of server memory per open subscription. Each is printed
with MET / NOT MET; the exit status is 0 either way (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from PIL import Image
from tortoise.transactions import in_transaction
from tqdm import tqdm

from bench._harness import percentile, print_table, verdict
from bench._live_clients import client_process
from bench._processes import child, free_port, ready_server, rss_kib, settle, tail
from pictograph.accounts.sessions import mint_token
from pictograph.cache import keys
from pictograph.db import apply_migrations, using_database
from pictograph.models import Follow, FollowState, User
from pictograph.resources import open_resources
from pictograph.settings import Settings
from tests.support.processes import process_env

ADMIN_URL = os.environ.get("PICTOGRAPH_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PICTOGRAPH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CREATE_UPLOAD = """mutation($type: String!, $size: Int!) {
  createUpload(input: {contentType: $type, byteSize: $size}) {
    uploadId url method headers { name value }
  }
}"""
CREATE_POST = """mutation($upload: ID!, $caption: String) {
  createPost(input: {uploadId: $upload, caption: $caption}) { id }
}"""
STATUS = "query($id: ID!) { post(id: $id) { status } }"
AUTHORS = 2
API_PROCESSES = 2
STEP_TIMEOUT = 30.0  # seconds: a post's deliveries, a server start
READY_POLL = 0.005  # seconds between looks at a new post's status
TOKEN_LIFETIME = 3600
TARGET_LAST_P99_MS = 500.0
TARGET_KIB_PER_SUBSCRIPTION = 30.0


# Processes.

@contextlib.asynccontextmanager
async def _server(env: dict[str, str], *, services: bool,
                  log: Path) -> AsyncIterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "pictograph", "serve", "--host", "127.0.0.1",
            "--port", str(port)]
    if services:
        args += ["--no-workers", "--processes", str(API_PROCESSES)]
    async with ready_server(args, {**env, "PICTOGRAPH_PUBLIC_BASE_URL": base}, base,
                            log) as process:
        yield base, process


@contextlib.asynccontextmanager
async def _worker(env: dict[str, str], log: Path) -> AsyncIterator[None]:
    with child([sys.executable, "-m", "pictograph", "worker"], env, log) as process:
        await asyncio.sleep(1.0)
        if process.poll() is not None:
            raise SystemExit("the worker exited:\n" + tail(log))
        yield


def _api_pids(server: subprocess.Popen, services: bool) -> list[int]:
    """The processes that hold the sockets: the supervisor's children, or the server."""
    if not services:
        return [server.pid]
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    # Not multiprocessing's resource tracker, which the supervisor starts too.
    return [int(pid) for pid in children
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _rss(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


async def _settle(pids: list[int]) -> None:
    for pid in pids:
        await settle(pid)


def _raise_fd_limit(sockets: int) -> int:
    """Each client process holds its share; the servers share theirs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(4096, sockets + 512)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft < sockets + 256:
        raise SystemExit(f"file descriptor limit {soft} (hard {hard}) is too low for "
                         f"{sockets} sockets per process; raise `ulimit -n`")
    return soft


# The backend and the users.

@contextlib.asynccontextmanager
async def _backend(services: bool, data_dir: Path) -> AsyncIterator[tuple[Settings,
                                                                          dict[str, str]]]:
    """Settings for seeding in this process and the environment for the server's: the
    embedded default in data_dir, or a throwaway PostgreSQL database and the Redis
    database of PICTOGRAPH_BENCH_REDIS_URL (dropped and flushed afterwards)."""
    if not services:
        settings = Settings(data_dir=data_dir, database_url=None, redis_url=None,
                            s3_endpoint_url=None, run_workers=False)
        yield settings, process_env(data_dir)
        return
    import asyncpg
    from redis.asyncio import Redis

    database = f"pictograph_bench_{secrets.token_hex(4)}"
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{database}"')
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
        await apply_migrations(database_url)
        env = process_env(data_dir, PICTOGRAPH_DATABASE_URL=database_url,
                          PICTOGRAPH_REDIS_URL=REDIS_URL)
        settings = Settings(data_dir=data_dir, database_url=database_url, redis_url=REDIS_URL,
                            secret_key=env["PICTOGRAPH_SECRET_KEY"],
                            s3_endpoint_url=None, run_workers=False)
        yield settings, env
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _seed(settings: Settings, subscribers: int) -> tuple[list[str], list[tuple[int, str]]]:
    """The authors' tokens, and (user id, token) for each subscriber, who all follow every
    author; counts are set exactly as the follow mutations would have left them."""
    async with open_resources(settings) as resources:
        with using_database(resources.database):
            unusable = "!"  # no argon2 hash matches it: these users cannot log in
            authors = [User(username=f"author{a}", password_hash=unusable,
                            follower_count=subscribers) for a in range(AUTHORS)]
            fans = [User(username=f"fan{i:05d}", password_hash=unusable,
                         following_count=AUTHORS) for i in range(subscribers)]
            await User.bulk_create([*authors, *fans], batch_size=1000)
            await Follow.bulk_create(
                [Follow(follower_id=fan.id, followee_id=author.id, state=FollowState.ACCEPTED)
                 for fan in fans for author in authors], batch_size=1000)
            async with in_transaction():
                author_tokens = [await mint_token(author.id, TOKEN_LIFETIME)
                                 for author in authors]
                tokens = [(fan.id, await mint_token(fan.id, TOKEN_LIFETIME))
                          for fan in tqdm(fans, desc="minting tokens", unit="token", leave=False)]
    return author_tokens, tokens


# Subscribers, in client processes.

@dataclass
class Clients:
    pipes: list[Connection]
    processes: list[Any]

    async def ask(self, command: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for pipe in self.pipes:
            pipe.send(command)
        return [await asyncio.to_thread(pipe.recv) for pipe in self.pipes]


@contextlib.asynccontextmanager
async def _clients(url: str, tokens: list[str], count: int) -> AsyncIterator[tuple[Clients,
                                                                                    int, list]]:
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for n in range(count):
        mine, theirs = context.Pipe()
        process = context.Process(target=client_process,
                                  args=(theirs, url, tokens[n::count]), daemon=True)
        process.start()
        pipes.append(mine)
        processes.append(process)
    clients = Clients(pipes, processes)
    try:
        replies = [await asyncio.to_thread(pipe.recv) for pipe in pipes]
        opened = sum(reply[1] for reply in replies)
        errors = [e for reply in replies for e in reply[2]]
        yield clients, opened, errors
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(clients.ask(("close",)), 30)
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()


async def _all_listening(redis_url: str, user_ids: list[int]) -> int:
    """How many of the users' live channels some server process has subscribed."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        listening = 0
        for start in range(0, len(user_ids), 500):
            channels = [keys.live_viewer(u) for u in user_ids[start:start + 500]]
            listening += sum(1 for _, n in await redis.pubsub_numsub(*channels) if n > 0)
        return listening
    finally:
        await redis.aclose()


# Posting.

def _jpeg(n: int) -> bytes:
    image = Image.new("RGB", (320 + n, 240), (200, 30, 30))
    image.paste((30, 30, 200), (160, 0, 320 + n, 240))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def _gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any],
               token: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL errors: {body['errors']}")
    return body["data"]


async def _post(client: httpx.AsyncClient, token: str, n: int) -> tuple[str, float, float]:
    """Upload ticket, PUT, createPost; returns the post id, when it was seen READY and
    the upload flow's seconds."""
    started = time.perf_counter()
    data = _jpeg(n)
    ticket = (await _gql(client, CREATE_UPLOAD, {"type": "image/jpeg", "size": len(data)},
                         token))["createUpload"]
    response = await client.request(ticket["method"], ticket["url"], content=data,
                                    headers={h["name"]: h["value"] for h in ticket["headers"]})
    if response.status_code != 200:
        raise SystemExit(f"upload PUT answered {response.status_code}: {response.text}")
    created = await _gql(client, CREATE_POST, {"upload": ticket["uploadId"],
                                               "caption": f"live bench {n}"}, token)
    flow = time.perf_counter() - started
    post_id = created["createPost"]["id"]
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        status = (await _gql(client, STATUS, {"id": post_id}, token))["post"]["status"]
        if status == "READY":
            return post_id, time.monotonic(), flow
        await asyncio.sleep(READY_POLL)
    raise SystemExit(f"post {post_id} was not READY within {STEP_TIMEOUT:.0f} s")


@dataclass
class Delivery:
    first: float
    median: float
    last: float
    missing: int
    samples: list[float]


async def _post_and_wait(client: httpx.AsyncClient, token: str, n: int, clients: Clients,
                         opened: int) -> tuple[Delivery, float, int]:
    """One post; its deliveries (seconds after READY) and the sockets that ended."""
    post_id, t0, flow = await _post(client, token, n)
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        replies = await clients.ask(("report", post_id))
        arrivals = [t for reply in replies for t in reply[2]]
        ended = sum(reply[3] for reply in replies)
        if len(arrivals) >= opened - ended or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # arrival times are taken by the clients, not here
    samples = [t - t0 for t in arrivals]
    if not samples:
        raise SystemExit(f"no subscriber got post {post_id} within {STEP_TIMEOUT:.0f} s")
    return Delivery(min(samples), statistics.median(samples), max(samples),
                    opened - len(samples), samples), flow, ended


# The run.

async def main(subscribers: int, posts: int, services: bool, client_processes: int) -> None:
    fd_limit = _raise_fd_limit(subscribers // client_processes + 1
                               if services else subscribers)
    with tempfile.TemporaryDirectory(prefix="pictograph-live-") as tmp:
        data_dir = Path(tmp) / "data"
        async with _backend(services, data_dir) as (settings, env):
            # The authors are followed by every subscriber: kept below the celebrity
            # threshold, their posts are fanned out to each follower's channel.
            env["PICTOGRAPH_CELEBRITY_THRESHOLD"] = str(subscribers + 1)
            seeding = time.perf_counter()
            author_tokens, tokens = await _seed(settings, subscribers)
            seeded = time.perf_counter() - seeding
            async with contextlib.AsyncExitStack() as stack:
                base, server = await stack.enter_async_context(
                    _server(env, services=services, log=Path(tmp) / "server.log"))
                if services:
                    await stack.enter_async_context(_worker(env, Path(tmp) / "worker.log"))
                try:
                    rows = await _measure(base, _api_pids(server, services), author_tokens,
                                          tokens, posts, services, client_processes)
                except BaseException:
                    print("\nserver log tail:\n" + tail(Path(tmp) / "server.log"))
                    raise
                errors = [line for line in (Path(tmp) / "server.log").read_text(
                    errors="replace").splitlines() if " ERROR " in line or "Traceback" in line]
                if errors:
                    print(f"\nthe server logged {len(errors)} errors; the first:")
                    print("\n".join(errors[:5]))

    backend = (f"PostgreSQL + Redis ({REDIS_URL}), serve --processes {API_PROCESSES} "
               "--no-workers + 1 worker process" if services
               else "embedded (SQLite + fakeredis), one process, workers in-process")
    print_table(
        f"Live feed updates: {subscribers} subscribers, {AUTHORS} authors they all follow "
        f"(fan-out), {posts} posts",
        [("backend", backend),
         ("seeding users, follows, tokens", f"{seeded:.1f} s (straight into the database)"),
         ("client processes / fd limit", f"{client_processes} / {fd_limit}"),
         *rows],
    )


async def _warm(url: str, tokens: list[str], count: int) -> None:
    """Sockets opened and closed first, so that the code a socket needs is loaded in
    every API process before the baseline is read."""
    async with _clients(url, tokens[:count], 1) as (_, opened, errors):
        if opened < count:
            raise SystemExit(f"warm-up sockets failed: {errors}")
        await asyncio.sleep(0.5)


async def _measure(base: str, pids: list[int], author_tokens: list[str],
                   tokens: list[tuple[int, str]], posts: int, services: bool,
                   client_processes: int) -> list[tuple[str, str]]:
    url = base.replace("http://", "ws://") + "/graphql"
    await _warm(url, [t for _, t in tokens], min(len(tokens), 8 * len(pids)))
    await _settle(pids)
    rss_before = _rss(pids)

    opening = time.perf_counter()
    async with _clients(url, [t for _, t in tokens],
                        client_processes) as (clients, opened, open_errors):
        open_seconds = time.perf_counter() - opening
        listening = None
        if services:
            user_ids = [u for u, _ in tokens]
            deadline = time.monotonic() + STEP_TIMEOUT
            while time.monotonic() < deadline:
                listening = await _all_listening(REDIS_URL, user_ids)
                if listening >= opened:
                    break
                await asyncio.sleep(0.2)
        await _settle(pids)
        rss_subscribed = _rss(pids)

        deliveries: list[Delivery] = []
        flows: list[float] = []
        ended = 0
        async with httpx.AsyncClient(base_url=base, timeout=STEP_TIMEOUT) as client:
            # Post 0 warms media processing and proves every socket is listening.
            warmup, _, _ = await _post_and_wait(client, author_tokens[0], 0, clients, opened)
            bar = tqdm(range(1, posts + 1), desc="posting", unit="post")
            for n in bar:
                await asyncio.sleep(0.5)
                delivery, flow, ended = await _post_and_wait(
                    client, author_tokens[n % AUTHORS], n, clients, opened)
                deliveries.append(delivery)
                flows.append(flow)
                bar.set_postfix(last=f"{delivery.last * 1000:.0f} ms")
            bar.close()
        rss_after = _rss(pids)
        ended_reasons = [r for reply in await clients.ask(("report", "")) for r in reply[4]]

    n = len(tokens)
    lasts = [d.last * 1000 for d in deliveries]
    firsts = [d.first * 1000 for d in deliveries]
    medians = [d.median * 1000 for d in deliveries]
    pooled = [x * 1000 for d in deliveries for x in d.samples]
    missed = sum(d.missing for d in deliveries)
    per_socket = (rss_subscribed - rss_before) / max(opened, 1)
    last_p99 = percentile(lasts, 0.99)
    rows = [
        ("subscribers (1 socket per user)", f"{opened}/{n} subscribed in {open_seconds:.1f} s"
         f" ({opened / open_seconds:,.0f} sockets/s)"
         + (f"; e.g. {open_errors[0]}" if open_errors else "")),
    ]
    if listening is not None:
        rows.append(("channels subscribed in Redis", f"{listening}/{opened}"))
    rows += [
        ("posts", f"{len(deliveries)} (+1 warm-up: last had it {warmup.last * 1000:,.0f} ms "
         f"after READY, missed by {warmup.missing})"),
        ("upload flow until createPost returns", f"p50 {statistics.median(flows) * 1000:,.0f} ms"),
        ("first subscriber has it, after READY", _p50_p99(firsts)),
        ("median subscriber has it (p50 of medians)", _p50_p99(medians)),
        ("LAST subscriber has it, after READY", _p50_p99(lasts)),
        ("any subscriber (all deliveries pooled)", _p50_p99(pooled)),
        ("sockets ended early", f"{ended}" + (f" (e.g. {ended_reasons[0]})"
                                              if ended_reasons else "")),
        (f"API processes' RSS before sockets ({len(pids)})", f"{rss_before / 1024:,.1f} MiB"),
        (f"API processes' RSS with {opened} subscribed", f"{rss_subscribed / 1024:,.1f} MiB"),
        ("API processes' RSS after the posts", f"{rss_after / 1024:,.1f} MiB"),
        (f"target: last subscriber p99 < {TARGET_LAST_P99_MS:.0f} ms after READY",
         f"{verdict(last_p99 < TARGET_LAST_P99_MS)}: {last_p99:,.0f} ms"),
        ("target: missed deliveries 0",
         f"{verdict(missed == 0)}: {missed} of {opened * len(deliveries)}"),
        (f"target: memory per open subscription <= {TARGET_KIB_PER_SUBSCRIPTION:.0f} KiB",
         f"{verdict(per_socket <= TARGET_KIB_PER_SUBSCRIPTION)}: {per_socket:,.1f} KiB"),
    ]
    return rows


def _p50_p99(samples_ms: list[float]) -> str:
    return (f"p50 {statistics.median(samples_ms):,.0f} ms, "
            f"p99 {percentile(samples_ms, 0.99):,.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--client-processes", type=int, default=4,
                        help="processes the subscribers' sockets are spread over")
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database), "
                             f"{API_PROCESSES} API processes and a worker")
    args = parser.parse_args()
    if args.subscribers < 1 or args.posts < 1 or args.client_processes < 1:
        parser.error("--subscribers, --posts and --client-processes must be at least 1")
    asyncio.run(main(args.subscribers, args.posts, args.services, args.client_processes))

"""Live feed updates at scale: N subscribers on one server process, one author posts.

    python bench/live.py               # embedded default (SQLite + fakeredis, workers in-process)
    python bench/live.py --services    # PostgreSQL + Redis on 127.0.0.1, plus a worker process
    python bench/live.py --subscribers 200 --posts 3    # a first look

A real `pictograph serve` process; N users (one socket each: MAX_SOCKETS_PER_USER is 5)
who all follow one author, created straight in the database before the server starts.
Each socket speaks graphql-transport-ws and subscribes to feedUpdates. The author then
posts through the upload ticket flow; for each post, t0 is when createPost returns and
every subscriber notes when its POST_ADDED for that post arrives. Media processing runs
before the fan-out, so the first subscriber's time is mostly that; last minus first is
the fan-out itself. Memory per open subscription is the server's RSS growth / N.

Prints medians and percentiles measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from PIL import Image
from tortoise.transactions import in_transaction
from tqdm import tqdm
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from bench._harness import percentile, print_table
from bench._processes import child, free_port, ready_server, rss_kib, settle, tail
from pictograph.accounts.sessions import mint_token
from pictograph.cache import keys
from pictograph.db import apply_migrations, using_database
from pictograph.models import Follow, FollowState, User
from pictograph.resources import open_resources
from pictograph.settings import Settings
from tests.support.processes import process_env

ADMIN_URL = os.environ.get("PICTOGRAPH_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PICTOGRAPH_BENCH_LIVE_REDIS_URL", "redis://127.0.0.1:6379/12")
PROTOCOL = Subprotocol("graphql-transport-ws")
SUBSCRIBE = json.dumps({"id": "1", "type": "subscribe", "payload": {
    "query": "subscription { feedUpdates { kind postId } }"}})
PONG = json.dumps({"type": "pong"})
CREATE_UPLOAD = """mutation($type: String!, $size: Int!) {
  createUpload(input: {contentType: $type, byteSize: $size}) {
    uploadId url method headers { name value }
  }
}"""
CREATE_POST = """mutation($upload: ID!, $caption: String) {
  createPost(input: {uploadId: $upload, caption: $caption}) { id }
}"""
OPENING_AT_ONCE = 50  # sockets being opened concurrently
STEP_TIMEOUT = 30.0  # seconds: a socket's handshake, a post's deliveries, a server start
TOKEN_LIFETIME = 3600


# Processes.

@contextlib.asynccontextmanager
async def _server(env: dict[str, str], *, workers: bool,
                  log: Path) -> AsyncIterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "pictograph", "serve", "--host", "127.0.0.1",
            "--port", str(port)]
    if not workers:
        args.append("--no-workers")
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


def _raise_fd_limit(subscribers: int) -> int:
    """Client sockets live here, server sockets in the child, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(4096, subscribers + 512)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft < subscribers + 256:
        raise SystemExit(f"file descriptor limit {soft} (hard {hard}) is too low for "
                         f"{subscribers} sockets; raise `ulimit -n`")
    return soft


# The backend and the users.

@contextlib.asynccontextmanager
async def _backend(services: bool, data_dir: Path) -> AsyncIterator[tuple[Settings,
                                                                          dict[str, str]]]:
    """Settings for seeding in this process and the environment for the server's: the
    embedded default in data_dir, or a throwaway PostgreSQL database and Redis db 12
    (dropped and flushed afterwards)."""
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


async def _seed(settings: Settings, subscribers: int) -> tuple[str, list[tuple[int, str]]]:
    """The author's token, and (user id, token) for each subscriber, who all follow the
    author; counts are set exactly as the follow mutations would have left them."""
    async with open_resources(settings) as resources:
        with using_database(resources.database):
            unusable = "!"  # no argon2 hash matches it: these users cannot log in
            author = User(username="author", password_hash=unusable, follower_count=subscribers)
            fans = [User(username=f"fan{i:05d}", password_hash=unusable, following_count=1)
                    for i in range(subscribers)]
            await User.bulk_create([author, *fans], batch_size=500)
            await Follow.bulk_create(
                [Follow(follower_id=fan.id, followee_id=author.id, state=FollowState.ACCEPTED)
                 for fan in fans], batch_size=500)
            async with in_transaction():
                author_token = await mint_token(author.id, TOKEN_LIFETIME)
                tokens = [(fan.id, await mint_token(fan.id, TOKEN_LIFETIME))
                          for fan in tqdm(fans, desc="minting tokens", unit="token", leave=False)]
    return author_token, tokens


# Subscribers.

@dataclass
class Subscriber:
    user_id: int
    token: str
    socket: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    arrivals: dict[str, float] = field(default_factory=dict)  # post id -> perf_counter
    ended: str | None = None


async def _subscribe(url: str, token: str) -> ClientConnection:
    ws = await connect(url, subprotocols=[PROTOCOL], open_timeout=STEP_TIMEOUT,
                       close_timeout=2, max_queue=64)
    try:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": f"Bearer {token}"}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
            if message.get("type") == "connection_ack":
                break
            if message.get("type") == "ping":
                await ws.send(PONG)
        await ws.send(SUBSCRIBE)
    except BaseException:
        await ws.close()
        raise
    return ws


async def _read(subscriber: Subscriber, counts: dict[str, int]) -> None:
    assert subscriber.socket is not None
    try:
        async for raw in subscriber.socket:
            arrived = time.perf_counter()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await subscriber.socket.send(PONG)
            elif kind == "next":
                update = (message["payload"].get("data") or {}).get("feedUpdates") or {}
                post_id = update.get("postId")
                if update.get("kind") == "POST_ADDED" and post_id not in subscriber.arrivals:
                    subscriber.arrivals[post_id] = arrived
                    counts[post_id] = counts.get(post_id, 0) + 1
                elif message["payload"].get("errors"):
                    subscriber.ended = f"error: {message['payload']['errors']}"
            elif kind in ("error", "complete"):
                # An error arrives as a `next` with errors, then `complete`: keep the error.
                subscriber.ended = subscriber.ended or f"{kind}: {message.get('payload')}"
                return
        subscriber.ended = subscriber.ended or f"closed {subscriber.socket.close_code}"
    except ConnectionClosed as error:
        subscriber.ended = f"closed: {error}"


async def _open_all(url: str, subscribers: list[Subscriber], counts: dict[str, int]) -> int:
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    bar = tqdm(total=len(subscribers), desc="opening sockets", unit="socket")

    async def one(subscriber: Subscriber) -> bool:
        async with gate:
            try:
                subscriber.socket = await _subscribe(url, subscriber.token)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:
                subscriber.ended = f"not opened: {error!r}"
                return False
            finally:
                bar.update()
        subscriber.reader = asyncio.create_task(_read(subscriber, counts))
        return True

    try:
        return sum(await asyncio.gather(*(one(s) for s in subscribers)))
    finally:
        bar.close()


async def _close_all(subscribers: list[Subscriber]) -> None:
    sockets = [s.socket for s in subscribers if s.socket is not None]
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    readers = [s.reader for s in subscribers if s.reader is not None]
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def _all_listening(redis_url: str, user_ids: list[int]) -> int:
    """How many of the users' live channels the server has subscribed in Redis."""
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
    """Upload ticket, PUT, createPost; returns the post id, t0 and the flow's seconds."""
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
    t0 = time.perf_counter()
    return created["createPost"]["id"], t0, t0 - started


@dataclass
class Delivery:
    first: float
    median: float
    last: float
    missing: int
    samples: list[float]


async def _post_and_wait(client: httpx.AsyncClient, token: str, n: int,
                         subscribers: list[Subscriber], counts: dict[str, int],
                         ) -> tuple[Delivery, float]:
    post_id, t0, flow = await _post(client, token, n)
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        open_now = sum(1 for s in subscribers if s.socket is not None and s.ended is None)
        if counts.get(post_id, 0) >= open_now:
            break
        await asyncio.sleep(0.01)  # arrival times are taken by the readers, not here
    samples = [s.arrivals[post_id] - t0 for s in subscribers if post_id in s.arrivals]
    if not samples:
        raise SystemExit(f"no subscriber got post {post_id} within {STEP_TIMEOUT:.0f} s")
    return Delivery(min(samples), statistics.median(samples), max(samples),
                    len(subscribers) - len(samples), samples), flow


# The run.

async def main(subscribers: int, posts: int, services: bool) -> None:
    fd_limit = _raise_fd_limit(subscribers)
    with tempfile.TemporaryDirectory(prefix="pictograph-live-") as tmp:
        data_dir = Path(tmp) / "data"
        async with _backend(services, data_dir) as (settings, env):
            seeding = time.perf_counter()
            author_token, tokens = await _seed(settings, subscribers)
            seeded = time.perf_counter() - seeding
            async with contextlib.AsyncExitStack() as stack:
                base, server = await stack.enter_async_context(
                    _server(env, workers=not services, log=Path(tmp) / "server.log"))
                if services:
                    await stack.enter_async_context(_worker(env, Path(tmp) / "worker.log"))
                try:
                    rows = await _measure(base, server.pid, author_token, tokens, posts,
                                          services)
                except BaseException:
                    print("\nserver log tail:\n" + tail(Path(tmp) / "server.log"))
                    raise
                errors = [line for line in (Path(tmp) / "server.log").read_text(
                    errors="replace").splitlines() if " ERROR " in line or "Traceback" in line]
                if errors:
                    print(f"\nthe server logged {len(errors)} errors; the first:")
                    print("\n".join(errors[:5]))

    backend = ("PostgreSQL + Redis db 12, serve --no-workers + 1 worker process" if services
               else "embedded (SQLite + fakeredis), workers in-process")
    print_table(
        f"Live feed updates: {subscribers} subscribers on one process, "
        f"1 author, {posts} posts",
        [("backend", backend),
         ("seeding users, follows, tokens", f"{seeded:.1f} s (straight into the database)"),
         ("file descriptor limit", f"{fd_limit}"),
         *rows],
    )


async def _measure(base: str, pid: int, author_token: str, tokens: list[tuple[int, str]],
                   posts: int, services: bool) -> list[tuple[str, str]]:
    url = base.replace("http://", "ws://") + "/graphql"
    counts: dict[str, int] = {}
    # One socket opened and closed first, so the code paths a socket needs are loaded
    # before the baseline is read.
    warm = await _subscribe(url, author_token)
    await asyncio.sleep(0.3)
    await warm.close()
    await settle(pid)
    rss_before = rss_kib(pid)

    subscribers = [Subscriber(user_id, token) for user_id, token in tokens]
    opening = time.perf_counter()
    opened = await _open_all(url, subscribers, counts)
    open_seconds = time.perf_counter() - opening
    listening = None
    if services:
        user_ids = [s.user_id for s in subscribers if s.socket is not None]
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            listening = await _all_listening(REDIS_URL, user_ids)
            if listening >= len(user_ids):
                break
            await asyncio.sleep(0.2)
    await settle(pid)
    rss_subscribed = rss_kib(pid)

    deliveries: list[Delivery] = []
    flows: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=STEP_TIMEOUT) as client:
            # Post 0 warms media processing and proves every socket is listening.
            warmup, _ = await _post_and_wait(client, author_token, 0, subscribers, counts)
            bar = tqdm(range(1, posts + 1), desc="posting", unit="post")
            for n in bar:
                await asyncio.sleep(0.5)
                delivery, flow = await _post_and_wait(client, author_token, n, subscribers,
                                                      counts)
                deliveries.append(delivery)
                flows.append(flow)
                bar.set_postfix(last=f"{delivery.last * 1000:.0f} ms")
            bar.close()
        rss_after = rss_kib(pid)
    finally:
        ended = [s.ended for s in subscribers if s.ended is not None]
        await _close_all(subscribers)

    n = len(subscribers)
    firsts = [d.first * 1000 for d in deliveries]
    medians = [d.median * 1000 for d in deliveries]
    lasts = [d.last * 1000 for d in deliveries]
    spreads = [(d.last - d.first) * 1000 for d in deliveries]
    pooled = [x * 1000 for d in deliveries for x in d.samples]
    per_socket = (rss_subscribed - rss_before) / max(opened, 1)
    rows = [
        ("subscribers (1 socket per user)", f"{opened}/{n} subscribed in {open_seconds:.1f} s"
         f" ({opened / open_seconds:,.0f} sockets/s, {OPENING_AT_ONCE} at once)"),
    ]
    if listening is not None:
        rows.append(("channels subscribed in Redis", f"{listening}/{opened}"))
    rows += [
        ("posts", f"{len(deliveries)} (+1 warm-up: last had it after "
         f"{warmup.last * 1000:,.0f} ms, missed by {warmup.missing})"),
        ("upload flow until createPost returns", f"p50 {statistics.median(flows) * 1000:,.0f} ms"),
        ("first subscriber has it (media + relay)", _p50_p99(firsts)),
        ("median subscriber has it (p50 of medians)", _p50_p99(medians)),
        ("LAST subscriber has it", _p50_p99(lasts)),
        ("fan-out spread, last - first", _p50_p99(spreads)),
        ("any subscriber (all deliveries pooled)", _p50_p99(pooled)),
        ("ratio last / first (p50)",
         f"{statistics.median(lasts) / statistics.median(firsts):.1f}x"),
        ("deliveries missed (30 s timeout)", f"{sum(d.missing for d in deliveries)}"
         f" of {n * len(deliveries)}"),
        ("sockets ended early", f"{len(ended)}" + (f" (e.g. {ended[0]})" if ended else "")),
        ("server RSS before sockets", f"{rss_before / 1024:,.1f} MiB"),
        (f"server RSS with {opened} subscribed", f"{rss_subscribed / 1024:,.1f} MiB"),
        ("memory per open subscription", f"{per_socket:,.1f} KiB"),
        ("server RSS after the posts", f"{rss_after / 1024:,.1f} MiB"),
    ]
    return rows


def _p50_p99(samples_ms: list[float]) -> str:
    return (f"p50 {statistics.median(samples_ms):,.0f} ms, "
            f"p99 {percentile(samples_ms, 0.99):,.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database)")
    args = parser.parse_args()
    if args.subscribers < 1 or args.posts < 1:
        parser.error("--subscribers and --posts must be at least 1")
    asyncio.run(main(args.subscribers, args.posts, args.services))

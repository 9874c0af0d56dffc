"""Pictograph under load, against the limit, in one run.

    python bench/load.py                    # 10,000 users, 50,000 posts (seeding ~1 min)
    python bench/load.py --users 2000 --posts 10000 --duration 5    # a first look

Needs wrk (`apt-get install wrk`, `brew install wrk`) and PostgreSQL + Redis on
127.0.0.1 (a throwaway database and Redis db 11, dropped and flushed afterwards).

`pictograph seed` makes the network (power-law follows, a few celebrities over the
threshold, small real photos). One uvicorn process serves the app with production
settings (uvloop, httptools, log level WARNING) plus the bench-only routes of
bench/limit_app.py; one `pictograph worker` runs beside it. wrk, in its own process on
127.0.0.1, drives each scenario at fixed concurrency, the requests rotating across
viewers. For the feed, the same run drives the limit: the same JSON for the same viewer
straight from Redis, no GraphQL. SQL statements and Redis round trips per request are
counted in the server over sequential requests after each timed run; CPU time per
request is the server's user+system time over the run / requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from PIL import Image
from tqdm import tqdm

from bench._harness import percentile, print_table
from bench._processes import child, cpu_seconds, free_port, ready_server, settle, tail
from bench.limit_app import limit_key
from pictograph.cache import keys

ADMIN_URL = os.environ.get("PICTOGRAPH_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PICTOGRAPH_BENCH_LOAD_REDIS_URL", "redis://127.0.0.1:6379/11")
LUA = Path(__file__).with_name("load.lua")
REPO = str(Path(__file__).resolve().parents[1])
PROFILE_DIR: Path | None = None  # set by --profile
THRESHOLD = 2_000  # the seeded celebrities are over it
FANOUT_FOLLOWERS = 10_000
COLD_SQL_BOUND = 3

FEED = ("query($first: Int) { feed(first: $first) { edges { node { id caption "
        "author { username displayName } media(size: THUMBNAIL) { url width height } } } "
        "pageInfo { hasNextPage endCursor } } }")
PROFILE = ("query($u: String!) { user(username: $u) { username displayName bio followerCount "
           "followingCount posts(first: 12) { edges { node { id "
           "media(size: THUMBNAIL) { url width height } } } } } }")
FOLLOW = "mutation($id: ID!) { follow(userId: $id) { status } }"
UNFOLLOW = "mutation($id: ID!) { unfollow(userId: $id) { status } }"
CREATE_UPLOAD = ("mutation($t: String!, $s: Int!) { createUpload(input: {contentType: $t, "
                 "byteSize: $s}) { uploadId url method headers { name value } } }")
CREATE_POST = "mutation($u: ID!) { createPost(input: {uploadId: $u, caption: \"bench\"}) { id } }"


@dataclass
class Viewer:
    id: int
    token: str
    profile: str  # username of someone they follow, with at least 12 posts
    other: str  # global id of someone they do not follow (for follow/unfollow pairs)


@dataclass
class Run:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_request: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


# The backend and the data.

@contextlib.asynccontextmanager
async def backend(data_dir: Path) -> AsyncIterator[dict[str, str]]:
    import asyncpg
    from redis.asyncio import Redis

    database = f"pictograph_load_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{database}"')
    redis = Redis.from_url(REDIS_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    env.update({
        "PICTOGRAPH_DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + "/" + database,
        "PICTOGRAPH_REDIS_URL": REDIS_URL,
        "PICTOGRAPH_DATA_DIR": str(data_dir),
        "PICTOGRAPH_SECRET_KEY": secrets.token_urlsafe(32),
        "PICTOGRAPH_CELEBRITY_THRESHOLD": str(THRESHOLD),
        "PICTOGRAPH_LOG_LEVEL": "WARNING",
        "PYTHONPATH": REPO,
    })
    # Benchmarks are not abuse: lift every rate limit the settings define.
    from pictograph.settings import Settings
    for name in Settings.model_fields:
        if name.startswith("rate_limit_"):
            env[f"PICTOGRAPH_{name.upper()}"] = "1000000/second"
    try:
        await redis.flushdb()
        yield env
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def pictograph(env: dict[str, str], *args: str) -> None:
    """Runs a CLI command in the foreground (its progress bars show)."""
    subprocess.run([sys.executable, "-m", "pictograph", *args], env=env, check=True)  # noqa: S603


async def viewers_of(env: dict[str, str], count: int, seed: int) -> list[Viewer]:
    """Tokens for `count` seeded users who follow at least 20 people, each with someone
    they follow who has 12 posts and someone they do not follow."""
    from tortoise import connections  # noqa: F401 - the ORM the resources open

    from pictograph.accounts.sessions import mint_token
    from pictograph.db import using_database
    from pictograph.models import Follow, FollowState, User
    from pictograph.resources import open_resources
    from pictograph.schema.node import encode_global_id
    from pictograph.settings import Settings

    settings = Settings(database_url=env["PICTOGRAPH_DATABASE_URL"], redis_url=REDIS_URL,
                        data_dir=Path(env["PICTOGRAPH_DATA_DIR"]), run_workers=False,
                        secret_key=env["PICTOGRAPH_SECRET_KEY"])
    rng = random.Random(seed)
    async with open_resources(settings) as resources:
        with using_database(resources.database):
            candidates = await User.filter(following_count__gte=20).values_list("id", flat=True)
            chosen = rng.sample(list(candidates), min(count, len(candidates)))
            prolific = dict(await User.filter(post_count__gte=12).values_list("id", "username"))
            everyone = await User.all().values_list("id", flat=True)
            viewers = []
            for viewer_id in tqdm(chosen, desc="minting viewer tokens", unit="viewer"):
                followed = set(await Follow.filter(
                    follower_id=viewer_id, state=FollowState.ACCEPTED
                ).values_list("followee_id", flat=True))
                profile = next((prolific[f] for f in followed if f in prolific), None)
                other = next(u for u in (rng.choice(everyone) for _ in range(1000))
                             if u not in followed and u != viewer_id)
                if profile is None:
                    continue
                token = await mint_token(viewer_id, 24 * 3600)
                viewers.append(Viewer(viewer_id, token, profile, encode_global_id("User", other)))
    return viewers


# Driving the server.

def _tool(name: str) -> str:
    """A command from PATH, or from this Python's own bin (an unactivated venv)."""
    beside = Path(sys.executable).with_name(name)
    return shutil.which(name) or (str(beside) if beside.exists() else name)


def wrk_run(base: str, lines: list[tuple[str, str, dict[str, Any]]], *, connections: int,
            seconds: float, pid: int, tmp: Path) -> Run:
    """One wrk run over the given requests (path, token, GraphQL body), rotating."""
    requests_file = tmp / f"requests-{secrets.token_hex(4)}.tsv"
    requests_file.write_text("".join(
        f"{path}\tBearer {token}\t{json.dumps(body)}\n" for path, token, body in lines))
    cpu_before = cpu_seconds(pid)
    profiler = None
    if PROFILE_DIR is not None:  # --profile: py-spy samples the server during the run
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        label = lines[0][2].get("query", lines[0][0])[:24].strip()
        name = PROFILE_DIR / f"{label}-{secrets.token_hex(2)}"
        profiler = subprocess.Popen(  # noqa: S603
            [_tool("py-spy"), "record", "--pid", str(pid),
             "--duration", str(int(seconds)), "--format", "raw",
             "--output", re.sub(r"[^\w./-]+", "_", str(name)) + ".txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(  # noqa: S603
        [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "--timeout", "10s", "-s", str(LUA), base],
        env={**os.environ, "BENCH_REQUESTS": str(requests_file)},
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before
    if profiler is not None:
        profiler.wait()
    found = re.search(r"^WRK (\{.*\})$", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    report = json.loads(found.group(1))
    return Run(
        requests=report["requests"], seconds=report["duration_us"] / 1e6,
        p50_ms=report["p50_us"] / 1000, p99_ms=report["p99_us"] / 1000,
        errors=report["socket_errors"] + report["non_2xx"],
        cpu_ms_per_request=cpu * 1000 / max(1, report["requests"]),
    )


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any],
              token: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"{query[:40]}... answered {response.status_code}: {body}")
    return body


@dataclass
class Counted:
    sql: float
    redis_round_trips: float
    per_request_sql: list[int]


async def counted(client: httpx.AsyncClient,
                  calls: list[Callable[[], Awaitable[object]]]) -> Counted:
    """SQL and Redis round trips per request, over sequential requests."""
    per_request = []
    totals = {"sql": 0, "redis_round_trips": 0}
    for call in calls:
        await client.post("/bench/counting", json={"on": True})
        await call()
        counts = (await client.get("/bench/counting")).json()
        await client.post("/bench/counting", json={"on": False})
        per_request.append(counts["sql"])
        totals["sql"] += counts["sql"]
        totals["redis_round_trips"] += counts["redis_round_trips"]
    return Counted(totals["sql"] / len(calls), totals["redis_round_trips"] / len(calls),
                   per_request)


def ms(run: Run) -> str:
    return (f"{run.per_second:,.0f} req/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"{run.cpu_ms_per_request:.2f} ms CPU/req, {run.errors} errors")


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


# The scenarios.

async def feed_scenario(client: httpx.AsyncClient, base: str, viewers: list[Viewer],
                        redis: Any, pid: int, tmp: Path, args: argparse.Namespace,
                        rows: list[tuple[str, str]]) -> None:
    for viewer in tqdm(viewers, desc="warming feeds (and the limit's copies)", unit="viewer"):
        body = await gql(client, FEED, {"first": 20}, viewer.token)
        await redis.set(limit_key(viewer.id), json.dumps(body))
    await settle(pid)
    feed_lines = [("/graphql", v.token, {"query": FEED, "variables": {"first": 20}})
                  for v in viewers]
    limit_lines = [("/bench/limit", v.token, {}) for v in viewers]
    runs: dict[str, list[Run]] = {"feed": [], "limit": []}
    for _ in tqdm(range(args.rounds), desc="feed vs limit (wrk rounds)", unit="round"):
        runs["feed"].append(wrk_run(base, feed_lines, connections=args.connections,
                                    seconds=args.duration, pid=pid, tmp=tmp))
        runs["limit"].append(wrk_run(base, limit_lines, connections=args.connections,
                                     seconds=args.duration, pid=pid, tmp=tmp))
    feed, limit = (min(r, key=lambda run: abs(run.per_second - statistics.median(
        x.per_second for x in r))) for r in (runs["feed"], runs["limit"]))
    ratio = statistics.median(f.per_second / lim.per_second
                              for f, lim in zip(runs["feed"], runs["limit"], strict=True))
    warm = await counted(client, [
        (lambda v=v: gql(client, FEED, {"first": 20}, v.token)) for v in viewers[:50]])
    rows += [
        (f"feed(first: 20), warm, {args.connections} connections", ms(feed)),
        ("limit: same JSON from Redis, no GraphQL", ms(limit)),
        ("ratio feed / limit (req/s, median of rounds)", f"{ratio:.0%}"),
        ("warm feed: SQL, Redis round trips per request",
         f"{warm.sql:.1f} SQL, {warm.redis_round_trips:.1f} round trips"),
        ("target: >= 50% of the limit", verdict(ratio >= 0.5)),
        (f"target: p99 < 25 ms at {args.connections} connections", verdict(feed.p99_ms < 25)),
        ("target: 0 SQL", verdict(warm.sql == 0)),
        ("target: <= 3 Redis round trips", verdict(warm.redis_round_trips <= 3)),
    ]

    # Cold: every cache of the viewer's feed is dropped before each request.
    cold_ms = []
    cold_calls = []
    for viewer in viewers[:args.cold]:
        async def cold(viewer: Viewer = viewer) -> None:
            await redis.delete(keys.home_feed(viewer.id), keys.home_feed_page(viewer.id))
            started = time.perf_counter()
            await gql(client, FEED, {"first": 20}, viewer.token)
            cold_ms.append((time.perf_counter() - started) * 1000)
        cold_calls.append(cold)
    cold_counts = await counted(client, cold_calls)
    sizes = [await redis.memory_usage(keys.home_feed(v.id)) or 0 for v in viewers[:100]]
    entries = [await redis.zcard(keys.home_feed(v.id)) for v in viewers[:100]]
    full = [s for s, n in zip(sizes, entries, strict=True) if n >= 700] or sizes
    rows += [
        ("feed(first: 20), cold, sequential",
         f"p50 {statistics.median(cold_ms):.1f} ms, p99 {percentile(cold_ms, 0.99):.1f} ms"),
        ("cold feed: SQL per request (min..max)",
         f"{min(cold_counts.per_request_sql)}..{max(cold_counts.per_request_sql)}, "
         f"{cold_counts.redis_round_trips:.1f} Redis round trips"),
        ("target: cold p99 < 60 ms", verdict(percentile(cold_ms, 0.99) < 60)),
        # Which statements run depends on what else is cached (authors, posts), but never
        # on the feed's length: a constant bound.
        (f"target: constant SQL when cold (at most {COLD_SQL_BOUND} whatever the feed)",
         verdict(max(cold_counts.per_request_sql) <= COLD_SQL_BOUND)),
        ("cached feed in Redis (MEMORY USAGE, feeds of >= 700 entries)",
         f"median {statistics.median(full) / 1024:.1f} KiB "
         f"(median {statistics.median(entries):.0f} entries over 100 viewers)"),
        ("target: 800 entries < 16 KB", verdict(statistics.median(full) < 16 * 1024)),
    ]


async def profile_and_follow_scenarios(client: httpx.AsyncClient, base: str,
                                       viewers: list[Viewer], pid: int, tmp: Path,
                                       args: argparse.Namespace,
                                       rows: list[tuple[str, str]]) -> None:
    for viewer in viewers:
        await gql(client, PROFILE, {"u": viewer.profile}, viewer.token)
    await settle(pid)
    profile_lines = [("/graphql", v.token, {"query": PROFILE, "variables": {"u": v.profile}})
                     for v in viewers]
    profile = wrk_run(base, profile_lines, connections=args.connections,
                      seconds=args.duration, pid=pid, tmp=tmp)
    profile_counts = await counted(client, [
        (lambda v=v: gql(client, PROFILE, {"u": v.profile}, v.token)) for v in viewers[:50]])
    # follow, unfollow, follow, ... of one other user per viewer: every request a change.
    pairs = []
    for v in viewers:
        pairs += [("/graphql", v.token, {"query": FOLLOW, "variables": {"id": v.other}}),
                  ("/graphql", v.token, {"query": UNFOLLOW, "variables": {"id": v.other}})]
    follows = wrk_run(base, pairs, connections=args.connections, seconds=args.duration,
                      pid=pid, tmp=tmp)
    follow_counts = await counted(client, [
        (lambda v=v, q=q: gql(client, q, {"id": v.other}, v.token))
        for v in viewers[:25] for q in (FOLLOW, UNFOLLOW)])
    rows += [
        ("user profile with 12 thumbnails", ms(profile)),
        ("profile: SQL, Redis round trips per request",
         f"{profile_counts.sql:.1f} SQL, {profile_counts.redis_round_trips:.1f} round trips"),
        ("follow + unfollow (each request a change)",
         ms(follows) + f"; {follows.per_second / 2:,.0f} pairs/s"),
        ("follow/unfollow: SQL, Redis round trips per request",
         f"{follow_counts.sql:.1f} SQL, {follow_counts.redis_round_trips:.1f} round trips"),
    ]


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((640, 480)).save(out, "JPEG", quality=80)
    return out.getvalue()


async def fanout_scenario(client: httpx.AsyncClient, env: dict[str, str], redis: Any,
                          posts: int, rows: list[tuple[str, str]]) -> None:
    """An author with 10,000 followers (under this run's threshold) posts; each post is
    timed from createPost returning to the 10,000th follower's feed holding it."""
    from pictograph.accounts.sessions import mint_token
    from pictograph.db import using_database
    from pictograph.ids import new_id
    from pictograph.models import Follow, FollowState, User
    from pictograph.resources import open_resources
    from pictograph.schema.node import decode_global_id
    from pictograph.seed import UNUSABLE_PASSWORD_HASH
    from pictograph.settings import Settings

    settings = Settings(database_url=env["PICTOGRAPH_DATABASE_URL"], redis_url=REDIS_URL,
                        data_dir=Path(env["PICTOGRAPH_DATA_DIR"]), run_workers=False,
                        secret_key=env["PICTOGRAPH_SECRET_KEY"])
    async with open_resources(settings) as resources:
        with using_database(resources.database):
            author = User(id=new_id(), username=f"fanout{secrets.token_hex(3)}",
                          password_hash=UNUSABLE_PASSWORD_HASH, follower_count=FANOUT_FOLLOWERS)
            fans = [User(id=new_id(), username=f"fan{secrets.token_hex(5)}",
                         password_hash=UNUSABLE_PASSWORD_HASH, following_count=1)
                    for _ in range(FANOUT_FOLLOWERS)]
            await User.bulk_create([author, *fans], batch_size=1000)
            await Follow.bulk_create(
                [Follow(id=new_id(), follower_id=f.id, followee_id=author.id,
                        state=FollowState.ACCEPTED) for f in fans], batch_size=1000)
            token = await mint_token(author.id, 3600)
    last = keys.home_feed(fans[-1].id)
    photo = jpeg()
    latencies = []
    for _ in tqdm(range(posts), desc="createPost -> 10,000th follower", unit="post"):
        ticket = (await gql(client, CREATE_UPLOAD, {"t": "image/jpeg", "s": len(photo)},
                            token))["data"]["createUpload"]
        await client.request(ticket["method"], ticket["url"], content=photo,
                             headers={h["name"]: h["value"] for h in ticket["headers"]})
        created = await gql(client, CREATE_POST, {"u": ticket["uploadId"]}, token)
        started = time.perf_counter()
        decoded = decode_global_id(created["data"]["createPost"]["id"])
        assert decoded is not None
        post_id = str(decoded[1])
        while await redis.zscore(last, post_id) is None:
            if time.perf_counter() - started > 30:
                raise SystemExit("the post did not reach the last follower in 30 s")
            await asyncio.sleep(0.002)
        latencies.append((time.perf_counter() - started) * 1000)
    p99 = percentile(latencies, 0.99)
    rate = await fanout_rate(settings, author.id, posts)
    rows += [
        (f"createPost -> {FANOUT_FOLLOWERS:,}th follower's feed (incl. media processing)",
         f"p50 {statistics.median(latencies):,.0f} ms, p99 {p99:,.0f} ms ({posts} posts)"),
        ("target: p99 < 1 s", verdict(p99 < 1000)),
        (f"fan-out: the worker's push_to_home to {FANOUT_FOLLOWERS:,} followers",
         f"{rate:,.0f} feed entries/s (median of {posts} posts)"),
        ("target: >= 100,000 feed entries/s per worker", verdict(rate >= 100_000)),
    ]


async def fanout_rate(settings: Any, author_id: int, posts: int) -> float:
    """Feed entries written per second by the fan-out worker's own step (the policy's
    push_to_home, as the worker calls it), timed in this process, one post at a time."""
    from pictograph.db import using_database
    from pictograph.feed.policy import HomeFeed
    from pictograph.ids import new_id
    from pictograph.models import Post, PostStatus
    from pictograph.resources import open_resources

    rates = []
    async with open_resources(settings.model_copy(update={"celebrity_threshold": 20_000})
                              ) as resources:
        with using_database(resources.database):
            feed = HomeFeed(resources)
            for _ in tqdm(range(posts), desc="push_to_home timed", unit="post"):
                # A READY post of the author's (push_to_home writes nothing for any other).
                post = await Post.create(author_id=author_id, status=PostStatus.READY,
                                         upload_id=new_id())
                started = time.perf_counter()
                written = await feed.push_to_home(post.id, author_id)
                rates.append(written / (time.perf_counter() - started))
    return statistics.median(rates)


async def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/load.py needs wrk: apt-get install wrk (or brew install wrk)")
    from redis.asyncio import Redis

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pictograph-load-") as tmp_name:
        tmp = Path(tmp_name)
        async with backend(tmp / "data") as env:
            started = time.perf_counter()
            pictograph(env, "migrate")
            pictograph(env, "seed", "--users", str(args.users), "--posts", str(args.posts),
                       "--celebrities", "5")
            seeded = time.perf_counter() - started
            viewers = await viewers_of(env, args.viewers, seed=7)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server_env = {**env, "PICTOGRAPH_PUBLIC_BASE_URL": base,
                          "PICTOGRAPH_RUN_WORKERS": "false"}
            serve = [sys.executable, "-m", "uvicorn", "bench.limit_app:create", "--factory",
                     "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                     "--loop", "auto", "--http", "auto", "--no-access-log"]
            redis = Redis.from_url(REDIS_URL, decode_responses=True)
            try:
                async with ready_server(serve, server_env, base, tmp / "server.log") as server:
                    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                        with child([sys.executable, "-m", "pictograph", "worker"], env,
                                   tmp / "worker.log"):
                            await feed_scenario(client, base, viewers, redis, server.pid, tmp,
                                                args, rows)
                            await profile_and_follow_scenarios(client, base, viewers,
                                                               server.pid, tmp, args, rows)
                        # A worker for which 10,000 followers is not a celebrity's following.
                        fanout_env = {**env, "PICTOGRAPH_CELEBRITY_THRESHOLD": "20000"}
                        with child([sys.executable, "-m", "pictograph", "worker"], fanout_env,
                                   tmp / "worker.log"):
                            await fanout_scenario(client, fanout_env, redis,
                                                  args.fanout_posts, rows)
            except BaseException:
                print("\nserver log tail:\n" + tail(tmp / "server.log"))
                print("\nworker log tail:\n" + tail(tmp / "worker.log"))
                raise
            finally:
                await redis.aclose()
    print_table(
        f"Pictograph vs the limit: {args.users:,} users, {args.posts:,} posts, one uvicorn "
        f"process + one worker, wrk at {args.connections} connections, "
        f"{args.duration} s per run",
        [("seeding (pictograph seed)", f"{seeded:.0f} s"),
         ("viewers (tokens rotating across requests)", f"{len(viewers)}"),
         *rows],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--viewers", type=int, default=300)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="feed/limit runs, alternating")
    parser.add_argument("--cold", type=int, default=100, help="cold feed reads")
    parser.add_argument("--fanout-posts", type=int, default=10)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy record the server during each run (collapsed stacks)")
    arguments = parser.parse_args()
    PROFILE_DIR = arguments.profile
    asyncio.run(main(arguments))

"""What the home feed costs: fan-out writes, warm and cold reads, celebrities, rebuilds.

    python bench/feed.py              # embedded default (SQLite + fakeredis)
    python bench/feed.py --services   # PostgreSQL + Redis on 127.0.0.1 (a throwaway database)
    python bench/feed.py --quick      # smaller sizes, for a first look
    python bench/feed.py --tiny       # every step at the smallest size (a test runs it)
    python bench/feed.py --services --profile 25   # and cProfile's top 25 of the fan-out

Prints medians and ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import pstats
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest import MonkeyPatch
from redis.exceptions import ResponseError
from tortoise.transactions import in_transaction
from tqdm import tqdm

from bench._harness import bench_app, percentile, print_table, verdict, with_backend
from pictograph import events
from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.cache.graph import GraphCache
from pictograph.db import using_database
from pictograph.feed import policy
from pictograph.feed.policy import FEED_CAP, HomeFeed
from pictograph.graph.reader import FollowGraph
from pictograph.ids import new_id
from pictograph.images import process_image
from pictograph.models import (
    Follow,
    FollowState,
    MediaVariant,
    Post,
    PostStatus,
    Upload,
    User,
)
from pictograph.storage.signing import variant_key
from tests.support.counting import count_queries
from tests.support.feeds import consumers
from tests.support.graphql import sign_up
from tests.support.photos import jpeg
from tests.support.redis_counter import count_redis

FEED_QUERY = """query {
  feed(first: 20) {
    edges { node { id caption author { username displayName }
                   media(size: THUMBNAIL) { url } } }
  }
}"""
UNUSABLE = "!"  # no argon2 hash matches it: these users cannot log in
BATCH = 5000
NEVER = 10**9  # a celebrity threshold nobody reaches


# Issue 24's targets: an 800-entry home feed in at most 16 KB of Redis memory, a
# worker fanning out 100,000 feed entries/s (a post to 10,000 followers), and the post
# in the last follower's feed within 500 ms (p99) of READY.
FEED_MEMORY_TARGET = 16_000
FANOUT_TARGET = 100_000
LAST_FOLLOWER_P99_MS = 500


async def main(followers: int, quick: bool, tiny: bool = False, profile: int = 0) -> None:
    sizes = {
        "pushes": 5,
        "latency_posts": 5 if quick else 12,
        "authors": 200,
        "posts_per_author": 5,
        "requests": 60 if quick else 300,
        "cold_requests": 20 if quick else 60,
        "rebuilds": 10 if quick else 25,
        "small_celebrity": 1000,
        "big_celebrity": 20_000 if quick else 100_000,
    }
    if tiny:  # every step, none of the figures: so that no refactor breaks it unseen
        sizes = {"pushes": 2, "latency_posts": 2, "authors": 25, "posts_per_author": 5,
                 "requests": 5, "cold_requests": 3, "rebuilds": 2, "small_celebrity": 20,
                 "big_celebrity": 40}
    rows: list[tuple[str, str]] = []
    async with bench_app() as (app, client):
        resources = app.state.resources
        settings = resources.settings
        redis = resources.redis
        with using_database(resources.database):
            await redis.flushdb()
            backend = "embedded" if settings.embedded_redis else "postgres+redis"

            # 1. Fan-out: an ordinary author (not a celebrity) with `followers` followers.
            settings.celebrity_threshold = NEVER
            author = await User.create(username="author", password_hash=UNUSABLE)
            crowd = await _users("fan", followers)
            await _follow(crowd, [author.id])
            await User.filter(id=author.id).update(follower_count=followers)
            feed = HomeFeed(resources)
            await feed.push_to_home(await _ready_post(author.id), author.id)  # feeds exist
            rates, push_ms = [], []
            shares = 0  # followers' shares written (each follower once per post)
            profiler = cProfile.Profile() if profile else None
            scripts_before = await _script_stats(redis)
            for _ in tqdm(range(sizes["pushes"]), desc="push_to_home", unit="post"):
                post = await _ready_post(author.id)
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                written = await feed.push_to_home(post, author.id)
                if profiler is not None:
                    profiler.disable()
                elapsed = time.perf_counter() - started
                assert written >= followers, written  # and the recent list, own feed
                shares += followers
                rates.append(written / elapsed)
                push_ms.append(elapsed * 1000)
            scripts = _script_delta(scripts_before, await _script_stats(redis), shares)
            if profiler is not None:
                print(f"\ncProfile of {sizes['pushes']} push_to_home calls (cumulative):")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
            latencies, starts = await _ready_to_last_feed(resources, author.id, max(crowd),
                                                          sizes["latency_posts"])
            rows += [
                (f"fan-out push_to_home, {followers:,} followers",
                 f"{statistics.median(rates):,.0f} feed entries/s per worker "
                 f"({statistics.median(push_ms):,.0f} ms/post, median of {len(rates)})"),
                (f"target: >= {FANOUT_TARGET:,} feed entries/s per worker",
                 f"{verdict(statistics.median(rates) >= FANOUT_TARGET)} "
                 f"({statistics.median(rates) / FANOUT_TARGET:.0%} of it)"),
                ("Redis per follower (INFO commandstats, EVALSHA)", scripts),
                ("READY -> the fan-out worker's push_to_home begins",
                 f"p50 {statistics.median(starts):,.1f} ms, "
                 f"p99 {percentile(starts, 0.99):,.1f} ms (the stream's delivery)"),
                ("READY -> in the last follower's feed",
                 f"p50 {statistics.median(latencies):,.0f} ms, "
                 f"p99 {percentile(latencies, 0.99):,.0f} ms "
                 f"({len(latencies)} posts, real fan-out consumer)"),
                (f"target: p99 < {LAST_FOLLOWER_P99_MS} ms",
                 verdict(percentile(latencies, 0.99) < LAST_FOLLOWER_P99_MS)),
            ]

            # 2. Reads: a viewer following 200 authors with posts.
            token = await sign_up(client, "viewer")
            viewer = await User.get(username="viewer")
            authors = await _users("author", sizes["authors"])
            await _follow([viewer.id], authors)
            post_ids = await _posts_with_media(resources, authors, sizes["posts_per_author"])
            await User.filter(id=viewer.id).update(following_count=len(authors))
            await User.filter(id__in=authors).update(follower_count=1,
                                                     post_count=sizes["posts_per_author"])
            headers = {"Authorization": f"Bearer {token}"}

            async def read() -> None:
                response = await client.post("/graphql", json={"query": FEED_QUERY},
                                             headers=headers)
                body = response.json()
                assert not body.get("errors"), body
                edges = body["data"]["feed"]["edges"]
                assert len(edges) == 20 and all(e["node"]["media"]["url"] for e in edges)

            # Cold: the rendered response dropped too (its version gone), else the
            # response cache answers and the feed itself is never read.
            cold_keys = [
                keys.response_version(viewer.id),
                keys.home_feed(viewer.id), keys.home_feed_page(viewer.id),
                keys.home_feed_page_lock(viewer.id), *keys.graph_keys(viewer.id),
                keys.user_profile(viewer.id), keys.user_version(viewer.id),
                *(keys.post(i) for i in post_ids), *(keys.post_version(i) for i in post_ids),
            ]

            async def forget() -> None:
                for start in range(0, len(cold_keys), 500):
                    await redis.delete(*cold_keys[start:start + 500])

            for _ in range(5):
                await read()
            warm_ms = await _timed(read, sizes["requests"], None, "warm feed reads")
            cold_ms = await _timed(read, sizes["cold_requests"], forget, "cold feed reads")
            warm_sql, warm_redis = await _costs(read, None)
            cold_sql, cold_redis = await _costs(read, forget)
            rows += [
                ("feed(first: 20), warm", _reads(warm_ms, warm_sql, warm_redis)),
                ("feed(first: 20), cold", _reads(cold_ms, cold_sql, cold_redis)),
                ("ratio cold / warm (p50)",
                 f"{statistics.median(cold_ms) / statistics.median(warm_ms):.1f}x"),
            ]

            # 3. Rebuilding the viewer's feed from posts and follows.
            graph_cache = GraphCache(redis)
            await FollowGraph(graph_cache).ensure_loaded([viewer.id])
            rebuild_ms = []
            with count_queries() as rebuild_sql:
                for _ in tqdm(range(sizes["rebuilds"]), desc="regenerate", unit="feed"):
                    await redis.delete(keys.home_feed(viewer.id))
                    started = time.perf_counter()
                    await feed.regenerate(viewer.id, FollowGraph(graph_cache), None, 20)
                    rebuild_ms.append((time.perf_counter() - started) * 1000)
            entries = len((await feed.cache.stored_ids(keys.home_feed(viewer.id))).ids)
            assert entries == min(FEED_CAP, len(post_ids)), entries
            rows += [
                (f"regenerate (rebuild {entries} entries)",
                 f"{statistics.median(rebuild_ms):,.1f} ms/rebuild (median of "
                 f"{len(rebuild_ms)}), {len(rebuild_sql) / len(rebuild_ms):.0f} SQL each, "
                 "follow graph in Redis"),
                ("ratio rebuild / warm read (p50)",
                 f"{statistics.median(rebuild_ms) / statistics.median(warm_ms):.1f}x"),
            ]

            rows += await _feed_memory(redis)

            # 4. Celebrities: the write costs the same at any follower count.
            small, big = sizes["small_celebrity"], sizes["big_celebrity"]
            extra = await _users("crowd", max(0, big - len(crowd)))
            everyone = crowd + extra
            small_star = await User.create(username="star_small", password_hash=UNUSABLE,
                                           follower_count=small)
            big_star = await User.create(username="star_big", password_hash=UNUSABLE,
                                         follower_count=big)
            await _follow(everyone[:small], [small_star.id])
            await _follow(everyone[:big], [big_star.id])
            settings.celebrity_threshold = small // 2
            # Celebrities as they are after their first 90 s (see policy.CELEBRITY_GRACE):
            # merged at read time from their first post on.
            policy.CELEBRITY_GRACE = 0
            celebrity_feed = HomeFeed(resources)
            costs = {}
            for star, count in ((small_star.id, small), (big_star.id, big)):
                await celebrity_feed.push_to_home(await _ready_post(star), star)  # warm-up
                post = await _ready_post(star)
                with MonkeyPatch().context() as patch, count_redis(patch) as sent, \
                        count_queries() as sql:
                    started = time.perf_counter()
                    lists = await celebrity_feed.push_to_home(post, star)
                    elapsed = (time.perf_counter() - started) * 1000
                costs[count] = (sent.commands, sent.round_trips, len(sql), elapsed, lists)
            settings.celebrity_threshold = NEVER
            ordinary = HomeFeed(resources)
            await redis.delete(keys.celebrities())  # else the star stays one (sticky)
            await ordinary.push_to_home(await _ready_post(small_star.id), small_star.id)
            post = await _ready_post(small_star.id)
            with MonkeyPatch().context() as patch, count_redis(patch) as fanned:
                assert await ordinary.push_to_home(post, small_star.id) >= small
            equal = costs[small][:3] == costs[big][:3]
            for count in (small, big):
                commands, trips, sql_count, elapsed, lists = costs[count]
                rows.append((f"celebrity push_to_home, {count:,} followers",
                             f"{commands} Redis commands in {trips} round trips, "
                             f"{sql_count} SQL, {lists} lists written, {elapsed:.1f} ms"))
            rows += [
                ("celebrity write cost equal at both sizes", "yes" if equal else "NO"),
                (f"same post fanned out to {small:,} followers instead",
                 f"{fanned.commands:,} Redis commands in {fanned.round_trips} round trips"),
            ]

    print_table(f"Home feed ({backend}; fan-out to {followers:,} followers, viewer following "
                f"{sizes['authors']} authors)", rows)


async def _script_stats(redis: Any) -> tuple[int, int] | None:
    """Redis's EVALSHA calls and the microseconds it spent in them so far (None where
    the server keeps no such count: the embedded fakeredis, a cluster)."""
    try:
        stats = await redis.info("commandstats")
    except Exception:  # fakeredis, or a cluster's per-node answer
        return None
    found = stats.get("cmdstat_evalsha") if isinstance(stats, dict) else None
    if not isinstance(found, dict):
        return None
    return int(found["calls"]), int(found["usec"])


def _script_delta(before: tuple[int, int] | None, after: tuple[int, int] | None,
                  shares: int) -> str:
    if before is None or after is None or after[0] <= before[0]:
        return "not measured here (no INFO commandstats)"
    calls, usec = after[0] - before[0], after[1] - before[1]
    return (f"{usec / shares:.1f} us per follower ({calls:,} script calls for {shares:,} "
            "followers' shares; the server's whole count: another client's scripts on a "
            "shared Redis are in it)")


async def _feed_memory(redis: Any) -> list[tuple[str, str]]:
    """MEMORY USAGE of a full home feed (800 entries) as stored, and of the same ids in
    the sorted set that held a feed before (version 1), for the ratio."""
    post_ids = [new_id() for _ in range(FEED_CAP)]
    packed_key, zset_key = "bench:{feed}:packed", "bench:{feed}:zset"
    await FeedCache(redis).add([packed_key], post_ids)
    await redis.zadd(zset_key, {str(i): i for i in post_ids})
    try:
        packed = await redis.memory_usage(packed_key)
        zset = await redis.memory_usage(zset_key)
    except ResponseError:  # fakeredis has no MEMORY USAGE
        return [(f"home feed of {FEED_CAP} entries (MEMORY USAGE)",
                 "not measured here: the embedded fakeredis has no MEMORY USAGE "
                 "(--services measures it)")]
    finally:
        await redis.delete(packed_key, zset_key)
    return [
        (f"home feed of {FEED_CAP} entries (MEMORY USAGE)",
         f"{packed:,} bytes packed; {zset:,} bytes as the v1 sorted set: "
         f"{zset / packed:.0f}x smaller"),
        (f"target: {FEED_CAP}-entry feed <= {FEED_MEMORY_TARGET:,} bytes",
         f"{verdict(packed <= FEED_MEMORY_TARGET)} ({packed / FEED_MEMORY_TARGET:.0%} "
         "of it)"),
    ]


async def _users(prefix: str, count: int) -> list[int]:
    """Bulk-creates users who cannot log in; returns their ids in creation order."""
    people = [User(id=new_id(), username=f"{prefix}{i:06d}", password_hash=UNUSABLE)
              for i in range(count)]
    for start in tqdm(range(0, count, BATCH), desc=f"creating {prefix} users", unit="batch",
                      disable=count <= BATCH):
        await User.bulk_create(people[start:start + BATCH], batch_size=BATCH)
    return [p.id for p in people]


async def _follow(followers: list[int], followees: list[int]) -> None:
    rows = [Follow(id=new_id(), follower_id=a, followee_id=b, state=FollowState.ACCEPTED)
            for a in followers for b in followees]
    for start in tqdm(range(0, len(rows), BATCH), desc="creating follows", unit="batch",
                      disable=len(rows) <= BATCH):
        await Follow.bulk_create(rows[start:start + BATCH], batch_size=BATCH)


async def _ready_post(author_id: int) -> int:
    post = await Post.create(author_id=author_id, status=PostStatus.READY, upload_id=new_id())
    return post.id


async def _posts_with_media(resources: Any, authors: list[int], each: int) -> list[int]:
    """READY posts with stored THUMBNAIL and FULL variants, newest interleaved across
    authors, all sharing one stored photo."""
    variants = process_image(jpeg(480, 360))
    order = [a for a in authors for _ in range(each)]
    random.Random(1).shuffle(order)
    post_ids = [new_id() for _ in order]
    stored = []
    for variant in variants:
        key = variant_key(resources.secret_key, post_ids[0], variant.size, "jpg")
        await resources.storage.put(key, variant.data, variant.content_type)
        stored.append({"size": variant.size, "object_key": key, "width": variant.width,
                       "height": variant.height, "content_type": variant.content_type,
                       "byte_size": len(variant.data),
                       "etag": hashlib.sha256(variant.data).hexdigest()[:32]})
    uploads, posts, media = [], [], []
    for post_id, author_id in zip(post_ids, order, strict=True):
        upload_id = new_id()
        uploads.append(Upload(id=upload_id, owner_id=author_id, content_type="image/jpeg",
                              byte_size=1000, object_key=f"uploads/{author_id}/b{upload_id}",
                              expires_at=_now(), post_id=post_id))
        posts.append(Post(id=post_id, author_id=author_id, caption=f"photo {post_id}",
                          status=PostStatus.READY, upload_id=upload_id))
        media += [MediaVariant(post_id=post_id, **v) for v in stored]
    await Upload.bulk_create(uploads, batch_size=BATCH)
    await Post.bulk_create(posts, batch_size=BATCH)
    await MediaVariant.bulk_create(media, batch_size=BATCH)
    return post_ids


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _ready_to_last_feed(resources: Any, author_id: int, last_follower: int,
                              count: int) -> tuple[list[float], list[float]]:
    """Milliseconds from a post_ready event's publication to the post in the last
    follower's feed, with the real fan-out consumer running in the background; and to
    the moment the consumer began that post's push_to_home."""
    began: dict[int, float] = {}
    push_to_home = HomeFeed.push_to_home

    async def noting_the_start(self: HomeFeed, post_id: int, author_id: int) -> int:
        began[post_id] = time.perf_counter()
        return await push_to_home(self, post_id, author_id)

    patch = MonkeyPatch()
    patch.setattr(HomeFeed, "push_to_home", noting_the_start)
    try:
        return await _timed_posts(resources, author_id, last_follower, count, began)
    finally:
        patch.undo()


async def _timed_posts(resources: Any, author_id: int, last_follower: int, count: int,
                       began: dict[int, float]) -> tuple[list[float], list[float]]:
    # Blocking on the stream as `pictograph worker` does (tests block 1 ms, then pause
    # 50 ms: idle, a post would wait for that).
    [consumer] = [c for c in consumers(resources, block_ms=1000)
                  if c.stream == keys.event_stream(events.POSTS)]
    await consumer.ensure_group()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    redis = resources.redis
    stored = FeedCache(redis)
    samples, starts = [], []
    try:
        # One post more than timed: the first meets the consumer starting up (its group,
        # its first claim), which no post meets in a running worker.
        for number in tqdm(range(count + 1), desc="READY -> last follower", unit="post"):
            async with in_transaction():
                post = await Post.create(author_id=author_id, status=PostStatus.READY,
                                         upload_id=new_id())
                outbox = await events.record([events.PostReady(post_id=post.id,
                                                               author_id=author_id)])
            started = time.perf_counter()
            await events.publish(redis, outbox)
            # Every 2 ms, not more often: this poll shares the event loop with the
            # consumer it measures.
            while post.id not in (await stored.stored_ids(keys.home_feed(last_follower))).ids:
                if task.done():
                    task.result()
                await asyncio.sleep(0.002)
            if number > 0:
                samples.append((time.perf_counter() - started) * 1000)
                starts.append((began[post.id] - started) * 1000)
    finally:
        stop.set()
        await task
    return samples, starts


async def _timed(request: Callable[[], Awaitable[None]], count: int,
                 before: Callable[[], Awaitable[None]] | None, what: str) -> list[float]:
    """Latencies of sequential requests; `before` runs untimed ahead of each."""
    samples = []
    for _ in tqdm(range(count), desc=what, unit="req"):
        if before is not None:
            await before()
        started = time.perf_counter()
        await request()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _costs(request: Callable[[], Awaitable[None]],
                 before: Callable[[], Awaitable[None]] | None,
                 rounds: int = 5) -> tuple[float, tuple[float, float]]:
    """SQL queries, and Redis commands and round trips, per request (mean of `rounds`)."""
    sql = commands = trips = 0
    for _ in range(rounds):
        if before is not None:
            await before()
        with MonkeyPatch().context() as patch, count_redis(patch) as sent, \
                count_queries() as queries:
            await request()
        sql += len(queries)
        commands += sent.commands
        trips += sent.round_trips
    return sql / rounds, (commands / rounds, trips / rounds)


def _reads(samples: list[float], sql: float, redis: tuple[float, float]) -> str:
    rate = len(samples) / (sum(samples) / 1000)
    return (f"{rate:,.0f} req/s, p50 {statistics.median(samples):.1f} ms, "
            f"p99 {percentile(samples, 0.99):.1f} ms; {sql:.0f} SQL, "
            f"{redis[1]:.0f} Redis round trips ({redis[0]:.0f} commands) per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--followers", type=int, default=None,
                        help="followers of the fan-out author (default 10000)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    parser.add_argument("--tiny", action="store_true",
                        help="every step at the smallest size (the figures mean nothing)")
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print cProfile's top N functions of the fan-out's pushes")
    args = parser.parse_args()
    followers = args.followers or (30 if args.tiny else 10_000)
    asyncio.run(with_backend(args.services, main(followers, args.quick, args.tiny,
                                                 args.profile)))

"""Fan-out on write, fan-out on read for celebrities, the first-page cache, and counts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from pictograph.cache import keys
from pictograph.cache.feeds import FanOut, FeedCache
from pictograph.feed import policy
from pictograph.feed.policy import HomeFeed
from pictograph.models import Follow, FollowState, Post, User
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER, Configured
from tests.support.counting import count_queries
from tests.support.feeds import FEED, consumers, fan_out, feed_captions, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.redis_counter import count_redis
from tests.support.redis_state import all_keys


async def _followers(author: str, count: int) -> list[int]:
    star = await User.get(username=author)
    fans = [User(username=f"{author}_fan{i:04d}", password_hash="!") for i in range(count)]
    await User.bulk_create(fans)
    await Follow.bulk_create(
        [Follow(follower_id=f.id, followee_id=star.id, state=FollowState.ACCEPTED) for f in fans]
    )
    await User.filter(id=star.id).update(follower_count=count)
    return [f.id for f in fans]


async def test_a_celebrity_post_costs_the_same_redis_writes_whatever_the_following(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 5)
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)  # merged at read from the start
    feed = HomeFeed(resources)
    commands = {}
    for name, followers in (("small", 5), ("large", 80)):
        token = await sign_up(client, name)
        await _followers(name, followers)
        author = await User.get(username=name)
        assert await feed.is_celebrity(author.id)  # noticed, and followers told, once
        from tests.support.photos import jpeg, post_photo, process_media

        await post_photo(client, token, jpeg(64, 48), caption=f"{name} to the world")
        await process_media(resources)
        post = await Post.get(caption=f"{name} to the world")
        with count_redis(monkeypatch) as redis:
            await feed.push_to_home(post.id, author.id)
        commands[name] = redis.commands
    # (Plus one per follower whose rendered feed is cached, registered with the author:
    # none here.)
    assert commands["small"] == commands["large"] <= 11, commands
    # And a follower sees it, merged at read time.
    fan = await User.filter(username__startswith="large_fan").first()
    assert fan is not None
    from pictograph.accounts.sessions import mint_token

    fan_token = await mint_token(fan.id, 3600)
    assert (await feed_captions(client, fan_token))[0] == ["large to the world"]


async def test_normal_posts_fan_out_in_batches_to_every_follower(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "FANOUT_BATCH", 7)
    token = await sign_up(client, "writer")
    fans = await _followers("writer", 30)
    await publish(client, resources, token, "for all")
    post = await Post.get(caption="for all")

    feeds = FeedCache(resources.redis)
    for fan in fans:
        assert post.id in (await feeds.stored_ids(keys.home_feed(fan))).ids


async def test_a_fan_out_killed_midway_is_finished_by_another_worker_exactly_once(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "FANOUT_BATCH", 5)
    token = await sign_up(client, "busy")
    fans = await _followers("busy", 23)
    from tests.support.photos import jpeg, post_photo, process_media

    await post_photo(client, token, jpeg(64, 48), caption="interrupted")
    await process_media(resources)
    # Worker A takes the event and dies after a few batches, never acknowledging it.
    calls = 0
    original = FanOut.push

    async def dies_midway(self: FanOut, *args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:  # the author, two batches of followers: then dead
            raise SystemExit("worker killed")
        return await original(self, *args, **kwargs)  # type: ignore[arg-type]

    posts_consumer, follows_consumer = consumers(resources, claim_idle_ms=0)
    await follows_consumer.ensure_group()
    while await follows_consumer.step():
        pass
    monkeypatch.setattr(FanOut, "push", dies_midway)
    await posts_consumer.ensure_group()
    with pytest.raises(SystemExit):
        await posts_consumer.step()
    monkeypatch.setattr(FanOut, "push", original)
    assert calls == 4
    # Worker B claims the pending event and completes the fan-out.
    assert await fan_out(resources, claim_idle_ms=0) == 1
    post = await Post.get(caption="interrupted")
    for fan in fans:
        stored = await FeedCache(resources.redis).stored_ids(keys.home_feed(fan))
        assert stored.ids.count(post.id) == 1


async def test_concurrent_misses_rebuild_the_first_page_once(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = await sign_up(client, "crowded")
    author = await sign_up(client, "source")
    await relate_ok(client, "follow", me, await user_id(client, "source"))
    await publish(client, resources, author, "one")
    assert not await all_keys(resources.redis, "user_feed:*")  # no page cached yet
    merges = 0
    original = HomeFeed._merge

    async def counting_merge(self, *args, **kwargs):
        nonlocal merges
        merges += 1
        await asyncio.sleep(0.05)  # a slow rebuild: the others arrive meanwhile
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(HomeFeed, "_merge", counting_merge)
    results = await asyncio.gather(*(feed_captions(client, me) for _ in range(8)))
    assert all(captions == ["one"] for captions, _ in results)
    assert merges == 1


async def test_feed_pages_cost_no_sql_when_warm_and_few_when_cold(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    configured: Configured,
) -> None:
    me = await sign_up(client, "counter")
    authors = [await sign_up(client, f"poster{i}") for i in range(4)]
    for i in range(4):
        await relate_ok(client, "follow", me, await user_id(client, f"poster{i}"))
    await fan_out(resources)
    for round_ in range(5):
        for token in authors:
            await publish(client, resources, token, f"r{round_}")
    await gql(client, FEED, {"first": 20}, token=me)
    # Executed, as a miss of the rendered-response cache is (a hit is one command).
    uncached = configured(response_cache=False)
    with count_queries() as warm, count_redis(monkeypatch) as redis:
        result = await gql(uncached, FEED, {"first": 20}, token=me)
    assert len(result["data"]["feed"]["edges"]) == 20
    assert all(e["node"]["media"] for e in result["data"]["feed"]["edges"])
    assert warm == []
    # The token with the first page (one MGET on the viewer's slot), the posts (one
    # MGET), then authors (one MGET) and relations (one script) side by side (no
    # celebrity is followed here); the photos' checks reuse the relations the page read.
    # A warm read sends no cache-version reads, which only a miss needs. (On a cluster
    # an MGET is one per slot, the slots of a round trip's node sent side by side.)
    assert redis.round_trips == 4, redis
    assert redis.commands == 4 or REDIS_CLUSTER, redis
    # Not the trust marker either: without it the next test's first new connection
    # purges Redis at whatever moment it opens (see DEVELOPERS.md, "Redis that breaks").
    for key in await all_keys(resources.redis, "*"):
        if not key.startswith(("auth:", "trust:")):
            await resources.redis.delete(key)
    with count_queries() as cold:
        rebuilt = await gql(client, FEED, {"first": 20}, token=me)
    # The same page, but for the signed URLs: their expiry second may have ticked.
    assert without_urls(rebuilt) == without_urls(result)
    assert len(cold) <= 5, cold


def without_urls(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [(e["cursor"], e["node"]["id"], e["node"]["caption"], bool(e["node"]["media"]))
            for e in result["data"]["feed"]["edges"]]


async def test_the_first_page_read_with_the_token_is_only_its_owners(
    client: httpx.AsyncClient, resources: Resources, configured: Configured
) -> None:
    """The feed's first page is read in the token check's round trip, from the keys of
    the user the token names: a token that names someone else gets none of it, and a
    token the cache has forgotten still reads its owner's page."""
    victim = await sign_up(client, "victim")
    attacker = await sign_up(client, "attacker")
    author = await sign_up(client, "followed")
    await relate_ok(client, "follow", victim, await user_id(client, "followed"))
    await publish(client, resources, author, "for the victim")
    uncached = configured(response_cache=False)
    assert (await feed_captions(uncached, victim))[0] == ["for the victim"]
    assert await all_keys(resources.redis, "user_feed:*")  # the page the attacker aims at

    forged = f"{victim.split('.')[0]}.{attacker.split('.', 1)[1]}"
    answer = await gql(uncached, FEED, {"first": 20}, token=forged)
    assert answer["data"] is None or answer["data"]["feed"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"]

    for key in await all_keys(resources.redis, "auth:*"):  # the token read from the database
        await resources.redis.delete(key)
    assert (await feed_captions(uncached, victim))[0] == ["for the victim"]
    assert (await feed_captions(uncached, attacker))[0] == []


async def test_a_delivery_leaves_the_cached_first_page_in_place_and_unserved(
    client: httpx.AsyncClient, resources: Resources, configured: Configured
) -> None:
    """The first page is served only at the feed version it was built at: a delivery
    drops that version alone (one key fewer to write per follower), and the page it
    left behind is never served again."""
    reader = await sign_up(client, "pagereader")
    author = await sign_up(client, "pageauthor")
    await relate_ok(client, "follow", reader, await user_id(client, "pageauthor"))
    await publish(client, resources, author, "first")
    uncached = configured(response_cache=False)  # so that the feed itself is read
    assert (await feed_captions(uncached, reader))[0] == ["first"]
    reader_id = (await User.get(username="pagereader")).id
    page = await resources.redis.get(keys.home_feed_page(reader_id))
    assert page is not None  # cached by that read

    await publish(client, resources, author, "second")
    assert await resources.redis.get(keys.home_feed_page(reader_id)) == page
    assert (await feed_captions(uncached, reader))[0] == ["second", "first"]


@pytest.mark.skipif(REDIS_CLUSTER, reason="listens with a single server's pub/sub")
async def test_a_live_event_goes_only_to_followers_with_an_open_socket(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "broadcaster")
    author_id = (await User.get(username="broadcaster")).id
    listening, away = await _followers("broadcaster", 2)
    redis = resources.redis
    # What an open socket holds (http/sockets.py): a lease among the user's sockets.
    await redis.zadd(keys.live_connections(listening), {"socket-1": time.time() + 60})
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.live_viewer(listening), keys.live_viewer(away))
    try:
        await publish(client, resources, author, "live or not")
        await redis.publish(keys.live_viewer(away), b"end")  # after every delivery
        heard: list[tuple[str, str]] = []
        async with asyncio.timeout(10):
            while not heard or heard[-1][1] != "end":
                # None for a subscription's confirmation, as well as for silence.
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=1)
                if message is not None:
                    heard.append((message["channel"], message["data"]))
    finally:
        await pubsub.aclose()
    post = await Post.get(caption="live or not")
    assert [channel for channel, _ in heard] == [keys.live_viewer(listening),
                                                 keys.live_viewer(away)]
    assert orjson.loads(heard[0][1]) == {"kind": "post_added", "post_id": post.id,
                                         "author_id": author_id}
    for follower in (listening, away):  # both feeds have it, whoever listens
        assert post.id in (await FeedCache(redis).stored_ids(keys.home_feed(follower))).ids


@pytest.mark.skipif(REDIS_CLUSTER, reason="a cluster keeps one channel per viewer")
async def test_a_fan_out_tells_each_process_once_per_call_naming_its_followers(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "crowd")
    author_id = (await User.get(username="crowd")).id
    followers = await _followers("crowd", 250)  # three calls: 100, 100 and 50
    both, old, away = followers[0], followers[1], followers[2]
    redis = resources.redis
    one, two = "a1" * 8, "b2" * 8  # two API processes' ids (LiveHub.process_id)
    lapses = time.time() + 60
    for follower in followers:
        if follower not in (old, away):
            await redis.zadd(keys.live_connections(follower), {f"{one}:s{follower}": lapses})
    # Two sockets on process one, and one on process two; and a socket of a process from
    # before per-process messages, whose lease names no process.
    await redis.zadd(keys.live_connections(both), {f"{one}:again": lapses,
                                                    f"{two}:s": lapses})
    await redis.zadd(keys.live_connections(old), {"0123abcd": lapses})
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.live_process(one), keys.live_process(two),
                           *(keys.live_viewer(f) for f in followers))
    try:
        await publish(client, resources, author, "to the crowd")
        await redis.publish(keys.live_viewer(away), b"end")  # after every delivery
        heard: list[tuple[str, bytes]] = []
        async with asyncio.timeout(10):
            while not heard or heard[-1][1] != b"end":
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=1)
                if message is not None:
                    data = message["data"]
                    heard.append((message["channel"],
                                  data.encode() if isinstance(data, str) else data))
    finally:
        await pubsub.aclose()
    post = await Post.get(caption="to the crowd")
    said = {"kind": "post_added", "post_id": post.id, "author_id": author_id}
    to_one = [orjson.loads(d) for c, d in heard if c == keys.live_process(one)]
    to_two = [orjson.loads(d) for c, d in heard if c == keys.live_process(two)]
    # One message per call for process one, each naming its share of that call's
    # followers; process two only hears of the one follower whose socket it holds.
    assert len(to_one) == 3
    assert all({k: v for k, v in m.items() if k != "viewers"} == said for m in to_one)
    named = [viewer for m in to_one for viewer in m["viewers"]]
    assert sorted(named) == sorted(f for f in followers if f not in (old, away))
    assert to_two == [{**said, "viewers": [both]}]
    # The old socket's process listens on the viewer's channel: told there, as before;
    # nobody else's channel hears anything.
    assert [(c, orjson.loads(d)) for c, d in heard[:-1] if c.startswith("live:{")] == [
        (keys.live_viewer(old), said)]

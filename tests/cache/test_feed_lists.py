"""The packed feed lists (cache/packed.py) against a model, on both backends: every
write is one script, so concurrent writes lose nothing and a reader never sees one half
done. And the memory bound of issue 24 on a real Redis."""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.exceptions import ResponseError

from pictograph.cache import keys
from pictograph.cache.feeds import FEED_CAP, FEED_TTL, FeedCache
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER
from tests.support.redis_counter import count_redis

FEED = keys.home_feed(7)
BASE = 400_000_000_000_000  # a snowflake of 2027
MEMORY_BOUND = 16_000  # bytes: an 800-entry feed, on a default-configured Redis 7


def ids(count: int, start: int = 0, step: int = 4096) -> list[int]:
    return [BASE + (start + i) * step for i in range(count)]


async def stored(resources: Resources, key: str = FEED) -> list[int]:
    return (await FeedCache(resources.redis).stored_ids(key)).ids


async def loaded(feeds: FeedCache) -> FeedCache:
    """The cache with its scripts loaded, so that a first call counts one command (not a
    NOSCRIPT answer, a SCRIPT LOAD and the call again)."""
    for script in (feeds._add, feeds._remove, feeds._follow_write, feeds._push):
        # On every master of a cluster (redis-py sends SCRIPT LOAD to each): the test's
        # keys may live on another node than any call before it went to.
        await feeds.redis.script_load(script.script)
    return feeds


async def test_an_800_entry_feed_takes_at_most_16_kb(resources: Resources) -> None:
    feeds = FeedCache(resources.redis)
    # Made the way fan-out makes it: one post at a time, then past the cap.
    for post_id in ids(FEED_CAP + 40):
        await feeds.push([7], [post_id], b"{}")
    assert len(await stored(resources)) == FEED_CAP
    try:
        used = await resources.redis.memory_usage(FEED)
    except ResponseError as error:  # fakeredis has no MEMORY USAGE
        pytest.skip(f"no MEMORY USAGE here: {error}")
    assert used is not None and used <= MEMORY_BOUND, used
    # A rebuilt feed (one rewrite) is held to the same bound.
    await resources.redis.delete(FEED)
    await feeds.rebuilt(7, 1, [(post_id, 1) for post_id in ids(FEED_CAP)],
                        await feeds.fill_epoch(FEED))
    rebuilt = await resources.redis.memory_usage(FEED)
    assert rebuilt is not None and rebuilt <= MEMORY_BOUND, rebuilt


async def test_add_keeps_ids_newest_first_once_each_whatever_the_order(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = FeedCache(resources.redis)
    feeds = await loaded(feeds)
    posts = ids(300)
    draw = random.Random(1)  # noqa: S311 - replayable, not secret
    arriving = posts + draw.sample(posts, 60)  # redelivered ones too
    draw.shuffle(arriving)
    # Concurrent fan-outs and adds: each is one script, so none undoes another. (Not
    # counted: connections the pool opens for them vouch for Redis first, see trust.py.)
    # Thirty-two at a time: a cluster's per-node pool does not wait for a free connection.
    slots = asyncio.Semaphore(32)

    async def write(i: int, post_id: int) -> None:
        async with slots:
            if i % 2:
                await feeds.push([7], [post_id], b"{}")
            else:
                await feeds.add([FEED], [post_id])

    await asyncio.gather(*(write(i, post_id) for i, post_id in enumerate(arriving)))
    assert await stored(resources) == sorted(posts, reverse=True)
    with count_redis(monkeypatch) as sent:
        await feeds.push([7], ids(1, start=-1), b"{}")  # older than all: a rewrite
        await feeds.push([7], ids(1, start=400), b"{}")  # the newest: in place
    # Each: is the script loaded (SCRIPT EXISTS), then the call; on a cluster, the call
    # alone, through redis-py's cluster pipeline (FeedCache.fanning_out).
    assert sent.commands == (2 if REDIS_CLUSTER else 4)


async def test_trim_keeps_the_newest_at_the_cap_and_says_older_ones_were_cut(
    resources: Resources,
) -> None:
    feeds = FeedCache(resources.redis, cap=50)
    await feeds.complete(FEED, ids(30), await feeds.fill_epoch(FEED))
    for post_id in ids(40, start=30):  # the ring fills, grows, then overwrites its oldest
        await feeds.add([FEED], [post_id])
    older = ids(5, start=-5)
    await feeds.add([FEED], older)  # older than all it holds: cut at once
    found = await feeds.stored_ids(FEED)
    assert found.ids == sorted(ids(70), reverse=True)[:50]
    assert found.complete and found.trimmed
    [page] = await feeds.ranges([FEED], ids(1, start=40)[0], 5)
    assert page.ids == sorted(ids(5, start=35), reverse=True)


async def test_remove_takes_out_only_those_ids_and_creates_no_list(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = await loaded(FeedCache(resources.redis))
    await feeds.complete(FEED, ids(20), await feeds.fill_epoch(FEED))
    gone = [*ids(3, start=4), BASE - 1]  # one it never held
    with count_redis(monkeypatch) as sent:
        await feeds.remove(FEED, gone)
    assert sent.commands == 1
    found = await feeds.stored_ids(FEED)
    assert found.ids == [i for i in sorted(ids(20), reverse=True) if i not in gone]
    assert found.complete
    await feeds.remove(keys.home_feed(8), ids(2))
    assert not await resources.redis.exists(keys.home_feed(8))


async def test_merge_on_follow_lands_whole_beside_concurrent_fan_out(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = await loaded(FeedCache(resources.redis))
    theirs = ids(200, step=2 * 4096)  # the followed author's, interleaved with...
    others = [i + 4096 for i in theirs][::2]  # ... other authors' fan-out
    await asyncio.gather(feeds.follow_write(7, 99, 5, True, theirs),
                         *(feeds.push([7], [post_id], b"{}") for post_id in others))
    assert await stored(resources) == sorted(theirs + others, reverse=True)
    # An older change of the pair (an unfollow read before this follow) is skipped.
    with count_redis(monkeypatch) as sent:
        assert not await feeds.follow_write(7, 99, 4, False, theirs)
    assert sent.commands == 1
    assert await stored(resources) == sorted(theirs + others, reverse=True)


async def test_unmerge_on_unfollow_takes_all_the_authors_ids_in_one_step(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = await loaded(FeedCache(resources.redis))
    theirs = ids(300, step=2 * 4096)
    others = [i + 4096 for i in theirs]
    await feeds.complete(FEED, theirs + others[:100], await feeds.fill_epoch(FEED))
    seen: list[set[int]] = []

    async def read() -> None:
        for _ in range(30):
            seen.append(set((await feeds.stored_ids(FEED)).ids) & set(theirs))
            await asyncio.sleep(0)

    unmerged, *_ = await asyncio.gather(
        feeds.follow_write(7, 99, 6, False, theirs), read(),
        *(feeds.push([7], [post_id], b"{}") for post_id in others[100:]))
    assert unmerged
    # Every read saw all of the author's posts or none: never half unmerged.
    assert all(view in (set(), set(theirs)) for view in seen)
    assert await stored(resources) == sorted(others, reverse=True)
    with count_redis(monkeypatch) as sent:  # unmerging again: one command, a no-op
        assert await feeds.follow_write(7, 99, 7, False, theirs)
    assert sent.commands == 1
    assert await stored(resources) == sorted(others, reverse=True)


async def test_fan_out_keeps_the_ttl_and_a_completion_renews_it(
    resources: Resources,
) -> None:
    feeds = FeedCache(resources.redis)
    await feeds.complete(FEED, ids(20), await feeds.fill_epoch(FEED))
    await resources.redis.expire(FEED, 100)
    await feeds.push([7], ids(1, start=50), b"{}")  # the in-place path
    await feeds.add([FEED], ids(1, start=10, step=4096 * 3))  # a rewrite
    assert 0 < await resources.redis.ttl(FEED) <= 100
    await feeds.complete(FEED, ids(3), await feeds.fill_epoch(FEED))
    assert await resources.redis.ttl(FEED) > FEED_TTL - 60


async def test_random_writes_agree_with_a_sorted_list_model(resources: Resources) -> None:
    """Pushes in and out of order, merges, removals and reads past the ring's wrap,
    against the model: the newest `cap` distinct ids."""
    cap = 100
    feeds = FeedCache(resources.redis, cap=cap)
    model: set[int] = set()
    draw = random.Random(5)  # noqa: S311 - replayable, not secret
    for step in range(300):
        chosen = [BASE + draw.randrange(1000) * 4096 for _ in range(draw.randrange(1, 12))]
        roll = draw.random()
        if roll < 0.6:  # mostly one new post at a time, as fan-out writes
            newest = max(model, default=BASE) + draw.randrange(1, 3) * 4096
            post_id = newest if roll < 0.5 else chosen[0]
            await feeds.push([7], [post_id], b"{}")
            model.add(post_id)
        elif roll < 0.8:
            await feeds.follow_write(7, 99, step, True, chosen)
            model |= set(chosen)
        else:
            await feeds.remove(FEED, chosen)
            model -= set(chosen)
        model = set(sorted(model, reverse=True)[:cap])
        expected = sorted(model, reverse=True)
        assert await stored(resources) == expected, step
        if expected:
            before = expected[len(expected) // 2]
            [page] = await feeds.ranges([FEED], before, 7)
            assert page.ids == [i for i in expected if i < before][:7]


async def test_a_fill_whose_epoch_moved_writes_nothing(resources: Resources) -> None:
    """A fill that read the database before a purge (or a Redis that came back older)
    is refused after it: what fan-out added meanwhile was lost with the purge, and the
    fill would mark the list complete without it."""
    feeds = FeedCache(resources.redis)
    recent = keys.recent_posts(9)
    for key, fill in (
        (recent, lambda epoch: feeds.complete(recent, ids(3), epoch)),
        (FEED, lambda epoch: feeds.rebuilt(7, 1, [(i, 1) for i in ids(3)], epoch)),
    ):
        epoch = await feeds.fill_epoch(key)
        assert await feeds.fill_epoch(key) == epoch  # one epoch, shared by every filler
        await resources.redis.delete(keys.list_fill_epoch(key))  # what a purge does
        assert not await fill(epoch)
        assert await resources.redis.exists(key) == 0
        assert await fill(await feeds.fill_epoch(key))  # a fill that starts afresh lands
        assert (await feeds.ranges([key], None, 10))[0].complete

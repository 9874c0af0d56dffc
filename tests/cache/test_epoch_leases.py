"""The copies of epochs a process holds on a cluster (cache/responses.EpochLeases) and the
wait a revocation owes them (Fence.settles_at): a copy lapses EPOCH_LEASE after its read
was sent, a missing or pending epoch is never held, and a fence that took something away
from the viewers of users or posts settles no sooner than EPOCH_LEASE after it was taken.
On one node nothing is held, and nothing waits."""

from __future__ import annotations

import time

import pytest
from redis.asyncio.cluster import RedisCluster

from pictograph.cache import responses
from pictograph.cache.responses import EpochLeases, Fence, ResponseCache
from pictograph.resources import Resources


def test_a_copy_holds_from_before_its_read_for_the_lease() -> None:
    leases = EpochLeases()
    leases.hold(b"user:{7}:shown", b"e1", sent=100.0)
    assert leases.get(b"user:{7}:shown", 100.0) == b"e1"
    assert leases.get(b"user:{7}:shown", 100.0 + responses.EPOCH_LEASE - 0.001) == b"e1"
    assert leases.get(b"user:{7}:shown", 100.0 + responses.EPOCH_LEASE) is None
    assert leases.get(b"user:{8}:shown", 100.0) is None


def test_a_missing_or_pending_epoch_is_never_held_and_drops_the_copy() -> None:
    leases = EpochLeases()
    for value in (None, b"!fenced"):
        leases.hold(b"post:{9}:shown", b"e1", sent=100.0)
        leases.hold(b"post:{9}:shown", value, sent=100.0)
        assert leases.get(b"post:{9}:shown", 100.0) is None, value


def test_the_least_recently_held_go_first() -> None:
    leases = EpochLeases(size=2)
    for key in (b"a", b"b", b"c"):
        leases.hold(key, b"e", sent=100.0)
    assert [leases.get(key, 100.0) for key in (b"a", b"b", b"c")] == [None, b"e", b"e"]


async def test_a_fence_that_takes_away_settles_a_lease_after_it_was_taken(
    resources: Resources,
) -> None:
    cache = ResponseCache(resources.redis)
    before = time.monotonic()
    revoking = await cache.fence([1], [2])
    after = time.monotonic()
    follows = await cache.fence(follows=[3, 4], also=revoking)
    merged_later = await cache.fence([5], also=follows)
    giving = await cache.fence([6], revokes=False)
    pair = await cache.fence(follows=[7, 8])  # an unfollow's
    public = await cache.fence([9], revokes=False, settles=True)  # going public's
    for fence in (merged_later, giving, pair, public):
        await cache.changed(fence=fence)
    if isinstance(resources.redis, RedisCluster):
        assert before + responses.EPOCH_LEASE <= revoking.settles_at
        assert revoking.settles_at <= after + responses.EPOCH_LEASE
        # A retried change's fences are one: it settles after the last of them.
        assert revoking.settles_at == follows.settles_at < merged_later.settles_at
        # Takes nothing away, or only what the pair's own versions guard: no wait.
        assert giving.settles_at == pair.settles_at == 0
        assert public.settles_at >= merged_later.settles_at  # asked for: shown at once
    else:  # one node: every hit reads the epochs themselves
        assert {revoking.settles_at, merged_later.settles_at, giving.settles_at,
                pair.settles_at, public.settles_at} == {0}


@pytest.mark.parametrize("left", [0.05, -1.0])
async def test_settled_returns_once_the_copies_lapsed(left: float) -> None:
    fence = Fence("t", settles_at=time.monotonic() + left)
    await fence.settled()
    assert time.monotonic() >= fence.settles_at

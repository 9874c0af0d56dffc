"""The copies of epochs a process holds on a cluster (cache/responses.EpochLeases) and the
wait a revocation owes them (Fence.settles_at): a copy lapses EPOCH_LEASE after its read
was sent, a missing or pending epoch is never held, and a fence that took something away
from the viewers of users or posts settles no sooner than EPOCH_LEASE after it was taken.
On one node nothing is held, and nothing waits. The cluster's paths of ResponseCache also
run here on one server (below): what a hit reads, and what it holds from then on."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pictograph.accounts.sessions import token_key
from pictograph.cache import cluster_reads, keys, raw, responses
from pictograph.cache.responses import EpochLeases, Fence, Recording, ResponseCache
from pictograph.resources import Resources


def test_a_copy_holds_from_before_its_read_for_the_lease() -> None:
    leases = EpochLeases()
    leases.hold(b"user:{7}:shown", b"e1", sent=100.0)
    assert leases.get(b"user:{7}:shown", 100.0) == b"e1"
    assert leases.get(b"user:{7}:shown", 100.0 + responses.EPOCH_LEASE - 0.001) == b"e1"
    assert leases.get(b"user:{7}:shown", 100.0 + responses.EPOCH_LEASE) is None
    assert leases.get(b"user:{7}:shown", 101.0 + responses.EPOCH_LEASE) is None
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


@pytest.mark.parametrize("paths", ["the client's", "a cluster's"])
async def test_a_fence_that_takes_away_settles_a_lease_after_it_was_taken(
    resources: Resources, paths: str,
) -> None:
    """On the client's own paths; and on a cluster's on one server (`_joined` off, as on a
    RedisCluster client), where a real cluster's run takes them anyway."""
    cache = ResponseCache(resources.redis)
    if paths == "a cluster's":
        if isinstance(resources.redis, RedisCluster):
            pytest.skip("a real cluster takes these paths itself")
        cache._joined = False
    before = time.monotonic()
    revoking = await cache.fence([1], [2])
    after = time.monotonic()
    follows = await cache.fence(follows=[3, 4], also=revoking)
    merged_later = await cache.fence([5], also=follows)
    giving = await cache.fence([6], revokes=False)
    pair = await cache.fence(follows=[7, 8])  # an unfollow's
    public = await cache.fence([9], revokes=False, settles=True)  # going public's
    unasked = await cache.fence([10], settles=False)
    for fence in (merged_later, giving, pair, public, unasked):
        await cache.changed(fence=fence)
    if not cache._joined:
        assert before + responses.EPOCH_LEASE <= revoking.settles_at
        assert revoking.settles_at <= after + responses.EPOCH_LEASE
        # A retried change's fences are one: it settles after the last of them.
        assert revoking.settles_at == follows.settles_at < merged_later.settles_at
        # Takes nothing away, or only what the pair's own versions guard: no wait.
        assert giving.settles_at == pair.settles_at == unasked.settles_at == 0
        assert public.settles_at >= merged_later.settles_at  # asked for: shown at once
    else:  # one node: every hit reads the epochs themselves
        assert {revoking.settles_at, merged_later.settles_at, giving.settles_at,
                pair.settles_at, public.settles_at, unasked.settles_at} == {0}


@pytest.mark.parametrize("left", [0.05, -1.0])
async def test_settled_returns_once_the_copies_lapsed(left: float) -> None:
    fence = Fence("t", settles_at=time.monotonic() + left)
    await fence.settled()
    assert time.monotonic() >= fence.settles_at


# The cluster's paths of ResponseCache on one server: `_joined` off, and the packed reads
# cluster_reads.read_by_node would send to each node sent to the one server in order (or,
# as after a failover the slot map has not seen, refused: None). A real cluster runs
# these paths itself (tests/http/test_response_cache_cluster.py); this stand-in asks what
# a process reads and holds, which the cluster's tests count only for a warm feed.

VIEWER = 8101
OWNER = 8102
POST = 9101


class OneNodeAsCluster:
    def __init__(self, resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
        if isinstance(resources.redis, RedisCluster):
            pytest.skip("a real cluster takes these paths itself")
        self.redis = resources.redis
        self.stale = False  # True: every node refuses (a stale slot map)
        self.sent: list[list[bytes]] = []  # the keys of each read_by_node call

        async def by_node(redis: Redis, commands: Sequence[tuple[bytes, bytes]]) -> Any:
            self.sent.append([key for key, _ in commands])
            if self.stale:
                return None
            return [await raw.call(redis, packed) for _, packed in commands]

        monkeypatch.setattr(cluster_reads, "read_by_node", by_node)

    def cache(self) -> ResponseCache:
        cache = ResponseCache(self.redis)
        cache._joined = False  # as on a RedisCluster client
        return cache


@pytest.fixture
def cluster(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> OneNodeAsCluster:
    return OneNodeAsCluster(resources, monkeypatch)


async def signed_in(redis: Redis, viewer_id: int = VIEWER) -> str:
    key = token_key(f"{viewer_id}.{'secret':x<43}")
    await redis.set(key, f"{viewer_id}:{int(time.time()) + 600}")
    return key


SHOWN = (keys.user_shown(OWNER), keys.post_shown(POST))


async def stored_showing_owner_and_post(cache: ResponseCache, token: str) -> None:
    """A response that showed OWNER and POST, stored (its epochs made first)."""
    recording = Recording(VIEWER, 60)
    await recording.depend_now(cache.redis, SHOWN)
    await cache.make_epochs(recording.missing)
    lookup = await cache.lookup(VIEWER, token, "d")
    assert lookup.filling, lookup
    recording = Recording(VIEWER, 60)
    await recording.depend_now(cache.redis, SHOWN)
    assert recording.cacheable
    assert await cache.store(VIEWER, "d", lookup, recording, b'{"data": 1}', 60)


async def stored_on_the_cluster_paths(cluster: OneNodeAsCluster,
                                      monkeypatch: pytest.MonkeyPatch,
                                      lease: float) -> tuple[ResponseCache, str]:
    """A cache on the cluster's paths, with copies held `lease` seconds, that stored an
    answer showing the owner and the post; and the viewer's token key."""
    monkeypatch.setattr(responses, "EPOCH_LEASE", lease)
    cache = cluster.cache()
    token = await signed_in(cache.redis)
    await stored_showing_owner_and_post(cache, token)
    return cache, token


def viewer_only() -> list[bytes]:
    return [keys.response_version(VIEWER).encode()]


async def test_a_hit_compares_the_copies_the_store_kept_and_reads_the_viewers_slot_only(
    cluster: OneNodeAsCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache, token = await stored_on_the_cluster_paths(cluster, monkeypatch, 60.0)
    cluster.sent.clear()
    for _ in range(2):
        assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": 1}'
    assert cluster.sent == [viewer_only(), viewer_only()]


@pytest.mark.parametrize("stale", [False, True])
async def test_epochs_without_a_copy_are_read_beside_the_mget_and_judged(
    cluster: OneNodeAsCluster, monkeypatch: pytest.MonkeyPatch, stale: bool,
) -> None:
    """No lease (every copy lapsed at once): the epochs the response recorded are read
    with the viewer's keys, in the one read_by_node call, or, where it refuses, the
    redis-py way beside the MGET; a change to what it showed ends the hit."""
    cache, token = await stored_on_the_cluster_paths(cluster, monkeypatch, 0.0)
    cluster.stale = stale
    cluster.sent.clear()
    assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": 1}'
    epochs = sorted(key.encode() for key in SHOWN)
    # Refused, the epochs are read again on their own, beside the viewer's MGET.
    assert cluster.sent == [viewer_only() + epochs] + ([epochs] if stale else [])
    await cache.changed([OWNER])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_a_copy_read_beside_the_mget_is_held_for_the_next_hit(
    cluster: OneNodeAsCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache, token = await stored_on_the_cluster_paths(cluster, monkeypatch, 60.0)
    cache.leases = EpochLeases()  # as once the store's copies lapsed
    cluster.sent.clear()
    assert (await cache.lookup(VIEWER, token, "d")).hit
    assert (await cache.lookup(VIEWER, token, "d")).hit
    assert cluster.sent == [viewer_only() + sorted(key.encode() for key in SHOWN),
                            viewer_only()]


@pytest.mark.parametrize("stale", [False, True])
async def test_epochs_a_process_did_not_expect_are_read_after_and_held(
    cluster: OneNodeAsCluster, monkeypatch: pytest.MonkeyPatch, stale: bool,
) -> None:
    """Another process stored the response: its epochs are read in a second round trip
    (read_by_node, or a pipeline where that refuses), held, and expected from then on."""
    monkeypatch.setattr(responses, "EPOCH_LEASE", 60.0)
    token = await signed_in(cluster.redis)
    await stored_showing_owner_and_post(cluster.cache(), token)
    elsewhere = cluster.cache()
    cluster.stale = stale
    cluster.sent.clear()
    assert (await elsewhere.lookup(VIEWER, token, "d")).body == b'{"data": 1}'
    assert cluster.sent == [viewer_only(), sorted(key.encode() for key in SHOWN)]
    cluster.sent.clear()
    assert (await elsewhere.lookup(VIEWER, token, "d")).hit
    assert cluster.sent == [viewer_only()]

"""The follow graph in Redis: write-through, rebuild, ordering, failures, and counts."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph import events
from pictograph.cache import keys
from pictograph.cache.graph import GraphCache
from pictograph.graph import store
from pictograph.models import Follow, FollowState, OutboxEvent, User
from pictograph.records import PairState
from pictograph.resources import Resources
from pictograph.workers.outbox_relay import relay_once
from tests.support.counting import count_queries
from tests.support.graphql import error_codes, gql, relate, relate_ok, sign_up, user_id
from tests.support.redis_state import all_keys, flush_caches

PAGE = """query($u: String!) {
  user(username: $u) {
    followers(first: 100) {
      edges { node { username viewerFollowStatus followsViewer followerCount followingCount } }
    }
  }
}"""


async def _hub_with_followers(client: httpx.AsyncClient, count: int) -> str:
    token = await sign_up(client, "hub")
    hub = await User.get(username="hub")
    users = [User(username=f"member{i:03d}", password_hash="x") for i in range(count)]
    await User.bulk_create(users)
    await Follow.bulk_create(
        [Follow(follower_id=u.id, followee_id=hub.id, state=FollowState.ACCEPTED) for u in users]
    )
    # The hub follows a third of them back: followsViewer and statuses vary by row.
    await Follow.bulk_create(
        [Follow(follower_id=hub.id, followee_id=u.id, state=FollowState.ACCEPTED)
         for u in users[::3]]
    )
    return token


@pytest.mark.parametrize(("size", "viewer"), [(10, "hub"), (100, "hub"), (100, "visitor")])
async def test_a_page_of_followers_costs_constant_queries_and_none_when_warm(
    client: httpx.AsyncClient, resources: Resources, size: int, viewer: str
) -> None:
    token = await _hub_with_followers(client, size)
    if viewer == "visitor":
        token = await sign_up(client, "visitor")
        await relate_ok(client, "follow", token, await user_id(client, "hub"))
    await gql(client, "{ viewer { id } }", token=token)  # the session is warm, nothing else
    async with resources.redis.pipeline(transaction=False) as pipe:
        for key in await all_keys(resources.redis, "user*"):
            pipe.delete(key)
        await pipe.execute()
    with count_queries() as cold:
        result = await gql(client, PAGE, {"u": "hub"}, token=token)
    edges = result["data"]["user"]["followers"]["edges"]
    assert len(edges) == min(100, size + (viewer == "visitor"))
    if viewer == "hub":
        assert {e["node"]["viewerFollowStatus"] for e in edges} == {"FOLLOWING", "NONE"}
        assert all(e["node"]["followsViewer"] for e in edges)
    assert len(cold) <= 4, cold
    await gql(client, PAGE, {"u": "hub"}, token=token)  # the profile read by name fills now
    with count_queries() as warm:
        again = await gql(client, PAGE, {"u": "hub"}, token=token)
    assert again == result
    assert warm == []


async def test_follow_writes_through_to_a_loaded_graph(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ann = await sign_up(client, "ann")
    await sign_up(client, "bob")
    bob = await user_id(client, "bob")
    await gql(client, PAGE, {"u": "ann"}, token=ann)  # loads ann's graph into Redis
    ann_id = (await User.get(username="ann")).id
    bob_id = (await User.get(username="bob")).id
    assert await resources.redis.exists(keys.graph_loaded(ann_id))
    await relate_ok(client, "follow", ann, bob)
    # Updated in place, not dropped: the marker survives and holds the new edge.
    assert await resources.redis.exists(keys.graph_loaded(ann_id))
    assert await resources.redis.zscore(keys.graph_part(ann_id, "following"), bob_id)
    with count_queries() as queries:
        relations = await GraphCache(resources.redis).relations(ann_id, [bob_id])
    assert relations is not None and relations[bob_id].following and queries == []


async def test_a_flushed_redis_rebuilds_the_same_graph(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ann = await sign_up(client, "ann")
    others = [await sign_up(client, f"other{i}") for i in range(3)]
    for i, token in enumerate(others):
        await relate_ok(client, "follow", token, await user_id(client, "ann"))
        await relate_ok(client, "follow", ann, await user_id(client, f"other{i}"))
    before = await gql(client, PAGE, {"u": "ann"}, token=ann)
    await flush_caches(resources.redis)
    after = await gql(client, PAGE, {"u": "ann"}, token=ann)
    assert after == before and len(after["data"]["user"]["followers"]["edges"]) == 3


@pytest.mark.parametrize("change", ["block", "follow"])
async def test_a_fill_from_before_a_change_is_refused(
    client: httpx.AsyncClient, resources: Resources, change: str
) -> None:
    """A reader loads B's graph, a change commits and writes through (B's graph not
    loaded yet), then the reader's older snapshot arrives: it must not be stored."""
    cache = GraphCache(resources.redis)
    alice = await sign_up(client, "alice")
    await sign_up(client, "bob")
    bob = await User.get(username="bob")
    epochs = await cache.epochs([bob.id])
    stale = (await store.load_snapshots([bob.id]))[bob.id]  # before the change
    await relate_ok(client, change, alice, await user_id(client, "bob"))
    assert await cache.fill([stale], epochs) == [False]
    assert await cache.relations(bob.id, [(await User.get(username="alice")).id]) is None
    fresh = (await store.load_snapshots([bob.id]))[bob.id]
    assert await cache.fill([fresh], await cache.epochs([bob.id])) == [True]


async def test_pair_writes_arriving_out_of_order_keep_the_newest(resources: Resources) -> None:
    cache = GraphCache(resources.redis)
    a = await User.create(username="aaa", password_hash="x")
    b = await User.create(username="bbb", password_hash="x")
    epochs = await cache.epochs([a.id])
    await cache.fill([(await store.load_snapshots([a.id]))[a.id]], epochs)
    followed = PairState(a=a.id, b=b.id, a_follows_b=12345)
    unfollowed = PairState(a=a.id, b=b.id)
    await cache.apply(unfollowed, (2, 2))  # the later change lands first
    await cache.apply(followed, (1, 1))  # then the earlier one, late
    relations = await cache.relations(a.id, [b.id])
    assert relations is not None and not relations[b.id].following


async def test_concurrent_changes_of_one_pair_are_serialised(client: httpx.AsyncClient) -> None:
    import asyncio

    owner = await sign_up(client, "owner")
    fan = await sign_up(client, "fan")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { id } }",
              token=owner)
    owner_id, fan_id = await user_id(client, "owner"), await user_id(client, "fan")
    await relate_ok(client, "follow", fan, owner_id)
    await asyncio.gather(*(relate_ok(client, "approveFollowRequest", owner, fan_id)
                           for _ in range(4)))
    assert (await User.get(username="owner")).follower_count == 1
    unfollowed, *_ = await asyncio.gather(relate(client, "unfollow", fan, owner_id),
                                          relate_ok(client, "block", owner, fan_id),
                                          relate_ok(client, "removeFollower", owner, fan_id))
    # The fan's unfollow runs first or finds the block already made (and then the owner
    # no longer exists for them): either order ends with no follow.
    assert error_codes(unfollowed) in ([], ["NOT_FOUND"]), unfollowed
    counts = await User.all().values_list("follower_count", "following_count")
    assert set(counts) == {(0, 0)}


async def test_a_blocker_stays_hidden_in_mutation_payloads(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice")
    mallory = await sign_up(client, "mallory")
    alice_id, mallory_id = await user_id(client, "alice"), await user_id(client, "mallory")
    await relate_ok(client, "block", alice, mallory_id)
    for mutation in ("unfollow", "unblock", "removeFollower", "rejectFollowRequest",
                     "approveFollowRequest", "block"):
        result = await relate(client, mutation, mallory, alice_id)
        assert error_codes(result) == ["NOT_FOUND"], mutation
        assert "alice" not in str(result)


async def test_every_change_a_worker_waits_for_is_put_on_the_stream(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ann = await sign_up(client, "ann")
    await sign_up(client, "bob")
    bob = await user_id(client, "bob")
    await relate_ok(client, "follow", ann, bob)
    await relate_ok(client, "unfollow", ann, bob)
    await relate_ok(client, "block", ann, bob)
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { id } }", token=ann)
    entries = await resources.redis.xrange(keys.event_stream(events.FOLLOWS))
    kinds = [events.decode(fields).KIND for _, fields in entries]
    # Going private changes no feed: nothing consumes it, so it is not published.
    assert kinds == ["followed", "unfollowed", "blocked"]
    assert await OutboxEvent.all().count() == 0


async def test_events_survive_a_redis_failure_after_commit(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await sign_up(client, "ann")
    await sign_up(client, "bob")
    bob = await user_id(client, "bob")
    await gql(client, PAGE, {"u": "ann"}, token=ann)  # ann's graph is cached: no follow yet

    async def redis_down(*_: object, **__: object) -> None:
        raise RedisConnectionError("redis went away")

    monkeypatch.setattr(GraphCache, "apply", redis_down)
    monkeypatch.setattr(events, "publish", redis_down)
    monkeypatch.setattr(GraphCache, "forget", redis_down)
    assert await relate_ok(client, "follow", ann, bob) == "FOLLOWING"  # committed
    monkeypatch.undo()
    assert await OutboxEvent.all().count() == 1
    ann_id = (await User.get(username="ann")).id
    bob_id = (await User.get(username="bob")).id
    # The pair was fenced before the commit and never written: the cache is not trusted
    # for it (readers ask the database) until the relay repairs it and publishes.
    assert await GraphCache(resources.redis).relations(ann_id, [bob_id]) is None
    assert await relay_once(resources, older_than=__import__("datetime").timedelta(0)) == 1
    fixed = await GraphCache(resources.redis).relations(ann_id, [bob_id])
    assert fixed is not None and fixed[bob_id].following
    entries = await resources.redis.xrange(keys.event_stream(events.FOLLOWS))
    assert [events.decode(f).KIND for _, f in entries] == ["followed"]
    assert await OutboxEvent.all().count() == 0


async def test_a_failed_cache_write_drops_the_graphs_so_reads_rebuild(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await sign_up(client, "ann")
    await sign_up(client, "bob")
    bob = await user_id(client, "bob")
    await relate_ok(client, "follow", ann, bob)
    await gql(client, PAGE, {"u": "ann"}, token=ann)
    ann_id = (await User.get(username="ann")).id

    async def write_fails(*_: object, **__: object) -> None:
        raise RedisConnectionError("write failed")

    monkeypatch.setattr(GraphCache, "apply", write_fails)
    assert await relate_ok(client, "unfollow", ann, bob) == "NONE"
    monkeypatch.undo()
    assert not await resources.redis.exists(keys.graph_loaded(ann_id))
    status = await gql(client, "query { user(username: \"bob\") { viewerFollowStatus } }",
                       token=ann)
    assert status["data"]["user"]["viewerFollowStatus"] == "NONE"

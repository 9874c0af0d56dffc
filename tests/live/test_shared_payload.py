"""A post's payload (the post and its author) is read once per process for all of that
process's subscribers; each viewer's relation to the author is still read and judged per
viewer, so adding subscribers adds only their own checks."""

from __future__ import annotations

import contextlib
import gc
import weakref

import httpx
import orjson
import pytest

from pictograph.cache import keys, pubsub
from pictograph.live import publish as live
from pictograph.resolvers import live as live_filter
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.support.feeds import publish
from tests.support.graphql import relate_ok, sign_up, user_id
from tests.support.redis_counter import count_redis
from tests.support.subscriptions import Subscription, added, subscribed

FANS = 5


async def test_n_subscribers_of_one_process_share_one_payload_read(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The share is held long enough that a slow test machine cannot split one delivery.
    monkeypatch.setattr(pubsub, "SHARE_SECONDS", 600.0)
    author = await sign_up(client, "author")
    author_id = await user_id(client, "author")
    fans = []
    for n in range(FANS):
        token = await sign_up(client, f"fan{n}")
        await relate_ok(client, "follow", token, author_id)
        fans.append((token, await user_id(client, f"fan{n}")))
    posts = [decode_id_of(await publish(client, resources, author, f"p{n}"), "Post")
             for n in range(4)]

    builds: list[int] = []
    build = live_filter._post_and_author

    async def counted(resources: Resources, post_id: int):  # type: ignore[no-untyped-def]
        builds.append(post_id)
        return await build(resources, post_id)

    monkeypatch.setattr(live_filter, "_post_and_author", counted)

    async with contextlib.AsyncExitStack() as stack:
        subscriptions: list[Subscription] = [
            await stack.enter_async_context(subscribed(resources, token, fan_id))
            for token, fan_id in fans]

        async def deliver(post: int, to: list[Subscription]) -> int:
            """Redis commands sent while `to` hear of the post, and the sentinels after."""
            with count_redis(monkeypatch) as count:
                await live.to_viewers(resources.redis, [s.viewer for s in to], added(post))
                for subscription in to:
                    assert await subscription.said() == [("POST_ADDED", post)]
            return count.commands

        # First every viewer's graph is read into Redis (what a cold one costs is not
        # this test's business), then each delivery reaches more subscribers.
        await deliver(posts[0], subscriptions)
        one = await deliver(posts[1], subscriptions[:1])
        three = await deliver(posts[2], subscriptions[:3])
        five = await deliver(posts[3], subscriptions)

    assert builds == posts  # one payload per post, however many subscribers heard it
    # Each further subscriber costs the same three commands: the PUBLISH of the post to
    # its channel, its relation to the author (one script) and its sentinel's PUBLISH.
    # The post and its author are not read again.
    assert three - one == five - three == 2 * 3


async def test_a_removal_makes_the_next_announcement_read_the_post_afresh(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pubsub, "SHARE_SECONDS", 600.0)
    author = await sign_up(client, "author")
    fan = await sign_up(client, "fan")
    await relate_ok(client, "follow", fan, await user_id(client, "author"))
    post = decode_id_of(await publish(client, resources, author, "shown"), "Post")
    async with subscribed(resources, fan, await user_id(client, "fan")) as updates:
        await updates.send(added(post))
        assert await updates.said() == [("POST_ADDED", post)]
        # Deleted: a POST_REMOVED overtakes a late POST_ADDED of the same post (another
        # publisher's). The share read before the deletion must not announce it again.
        deleted = await client.post("/graphql", json={
            "query": "mutation($id: ID!) { deletePost(id: $id) }",
            "variables": {"id": await _global(post)}},
            headers={"Authorization": f"Bearer {author}"})
        assert deleted.json()["data"]["deletePost"] is True
        await updates.send({"kind": live.POST_REMOVED, "post_id": post}, added(post))
        assert await updates.said() == [("POST_REMOVED", post)]


async def _global(post: int) -> str:
    from pictograph.schema.node import encode_global_id

    return encode_global_id("Post", post)


async def test_a_process_message_is_judged_for_each_viewer_it_names(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    if resources.live.sharded:
        pytest.skip("a cluster keeps one channel per viewer")
    author = await sign_up(client, "batched")
    author_id = await user_id(client, "batched")
    fans = []
    for name in ("stays", "leaves", "stranger"):
        token = await sign_up(client, name)
        if name != "stranger":
            await relate_ok(client, "follow", token, author_id)
        fans.append((token, await user_id(client, name)))
    post = decode_id_of(await publish(client, resources, author, "batched"), "Post")
    # Unfollowed after the post was published to the process, before it is taken.
    await relate_ok(client, "unfollow", fans[1][0], author_id)

    async with contextlib.AsyncExitStack() as stack:
        stays, leaves, stranger = [
            await stack.enter_async_context(subscribed(resources, token, fan_id))
            for token, fan_id in fans]
        # What the fan-out script sends a process: one message naming its viewers.
        await resources.redis.publish(
            keys.live_process(resources.live.process_id),
            orjson.dumps({**added(post), "author_id": decode_id_of(author_id, "User"),
                          "viewers": [stays.viewer, leaves.viewer, stranger.viewer]}))
        assert await stays.said() == [("POST_ADDED", post)]
        assert await leaves.said() == []  # no longer follows: nothing
        assert await stranger.said() == []  # never did: nothing


class _Client:
    """Stands for a Redis client: only its identity matters to the loader table."""


class _Resources:
    def __init__(self) -> None:
        self.redis = _Client()


async def test_the_relation_loader_is_one_per_resources_and_keeps_nothing_alive() -> None:
    first = _Resources()
    loader = live_filter._relations(first)  # type: ignore[arg-type]
    assert live_filter._relations(first) is loader  # type: ignore[arg-type]
    # Other resources over the same client get a loader of their own.
    second = _Resources()
    second.redis = first.redis
    assert live_filter._relations(second) is not loader  # type: ignore[arg-type]
    client = weakref.ref(first.redis)
    del first, second, loader
    gc.collect()
    assert client() is None  # the table's entry went with its client

"""What a subscription missed while its process's pub/sub link to Redis was down: on
reconnecting it takes back what it announced and may no longer show, and announces what
entered the feed meanwhile, once each.

The link is dropped by killing the hub's own connection (only this test's Redis database,
the server is shared), and the hub is held at its reconnect while the test acts, so the
messages are certainly published to nobody."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from pictograph.cache.pubsub import QUEUE_SIZE, RESYNC
from pictograph.checkpoints import Hold, holding
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.conftest import require_services
from tests.support.feeds import publish
from tests.support.graphql import relate_ok, sign_up, user_id
from tests.support.relations import follower_of
from tests.support.server import served
from tests.support.sockets import (
    SENTINEL,
    kill_pubsub_connections,
    open_socket,
    until_subscribed,
    updates_until_sentinel,
)

FEED_UPDATES = "subscription { feedUpdates { kind postId post { caption } } }"
RECONNECTING = "live_hub.reconnecting"


async def real_redis(resources: Resources) -> None:
    if resources.settings.embedded_redis:
        pytest.skip("needs a real Redis whose connections can be killed")
    await require_services()


async def listening(client: httpx.AsyncClient, resources: Resources, username: str) -> None:
    await until_subscribed(resources.redis,
                           decode_id_of(await user_id(client, username), "User"))


async def dropped(resources: Resources, hold: Hold) -> None:
    """Kills the hub's pub/sub connection; returns once the hub waits to reconnect."""
    assert await kill_pubsub_connections(resources.redis) >= 1
    async with asyncio.timeout(10):
        await hold.wait_reached()


async def test_posts_announced_before_a_removal_missed_in_the_drop_are_taken_back(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    await real_redis(resources)
    fan, owner = await follower_of(client, "fan", "owner")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await listening(client, resources, "fan")
        seen = await publish(client, resources, owner, "seen")
        added = await asyncio.wait_for(anext(updates), 10)
        assert added["data"]["feedUpdates"] == {
            "kind": "POST_ADDED", "postId": seen, "post": {"caption": "seen"}}
        async with holding(RECONNECTING) as hold:
            await dropped(resources, hold)
            # Its AUTHOR_GONE message goes to nobody.
            await relate_ok(client, "removeFollower", owner, await user_id(client, "fan"))
        await listening(client, resources, "fan")  # subscribed again
        mark = await publish(client, resources, fan, SENTINEL)
        assert await updates_until_sentinel(updates, mark) == [
            {"kind": "POST_REMOVED", "postId": seen, "post": None}]


async def test_a_post_that_entered_the_feed_during_the_drop_is_announced_once(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    await real_redis(resources)
    fan, author = await follower_of(client, "fan", "author")
    stranger = await sign_up(client, "stranger")
    before = await publish(client, resources, author, "before the socket")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await listening(client, resources, "fan")
        heard = await publish(client, resources, author, "heard live")
        async with holding(RECONNECTING) as hold:
            await dropped(resources, hold)
            missed = await publish(client, resources, author, "missed")
            await publish(client, resources, stranger, "not followed")
        await listening(client, resources, "fan")  # subscribed again
        mark = await publish(client, resources, fan, SENTINEL)
        said = await updates_until_sentinel(updates, mark)
    # What the feed held before the socket opened (the client read it) and what was
    # heard live are not said again; the missed post is, once.
    assert before not in {event["postId"] for event in said}
    assert said == [
        {"kind": "POST_ADDED", "postId": heard, "post": {"caption": "heard live"}},
        {"kind": "POST_ADDED", "postId": missed, "post": {"caption": "missed"}},
    ]


def test_a_listener_that_falls_behind_is_told_to_resync_instead_of_missing_messages(
    resources: Resources
) -> None:
    """A client that stops reading cannot grow the server's memory, and what it could not
    take is not lost without a word: its backlog is dropped for one RESYNC (which the
    tests above show a subscription acting on), and what comes after queues behind it."""
    hub = resources.live
    listener = hub.listener()
    listener.channels.add("live:{1}")
    hub._listeners["live:{1}"].add(listener)
    try:
        for post_id in range(QUEUE_SIZE):
            hub._dispatch("live:{1}", orjson.dumps({"kind": "post_added", "post_id": post_id}))
        assert len(listener.pending()) == QUEUE_SIZE
        hub._dispatch("live:{1}", orjson.dumps({"kind": "author_gone", "author_id": 2}))
        hub._dispatch("live:{1}", orjson.dumps({"kind": "post_added", "post_id": 7}))
        assert listener.pending() == [{"kind": RESYNC}, {"kind": "post_added", "post_id": 7}]
    finally:
        hub._listeners.pop("live:{1}", None)

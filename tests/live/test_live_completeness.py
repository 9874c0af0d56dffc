"""A subscription hears every post of the authors its viewer follows, once: an author who
becomes a celebrity while it is open, and an event published twice."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette

from pictograph import events
from pictograph.cache import keys
from pictograph.feed import policy
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.support.feeds import fan_out, publish
from tests.support.graphql import relate_ok, sign_up, user_id
from tests.support.relations import follower_of
from tests.support.server import served
from tests.support.sockets import open_socket, until_listened, until_subscribed

FEED_UPDATES = "subscription { feedUpdates { kind postId } }"


async def next_update(updates) -> dict:
    result = await asyncio.wait_for(anext(updates), 10)
    assert not result.get("errors"), result
    return result["data"]["feedUpdates"]


async def test_an_open_subscription_hears_an_author_who_became_a_celebrity(
    client: httpx.AsyncClient, app: Starlette, resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 2)
    fan, author = await follower_of(client, "fan", "author")
    author_pk = decode_id_of(await user_id(client, "author"), "User")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await until_subscribed(resources.redis, decode_id_of(await user_id(client, "fan"),
                                                             "User"))
        other = await sign_up(client, "other")
        await relate_ok(client, "follow", other, await user_id(client, "author"))
        crossing = await publish(client, resources, author, "crossing")
        assert await next_update(updates) == {"kind": "POST_ADDED", "postId": crossing}
        # Told of the new celebrity, the subscription listens to the author's channel.
        await until_listened(resources.redis, keys.live_author(author_pk))
        monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)
        celebrated = await publish(client, resources, author, "celebrated")
        assert await next_update(updates) == {"kind": "POST_ADDED", "postId": celebrated}


async def test_a_post_published_twice_is_announced_once(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await until_subscribed(resources.redis, decode_id_of(await user_id(client, "fan"),
                                                             "User"))
        first = await publish(client, resources, author, "once")
        assert await next_update(updates) == {"kind": "POST_ADDED", "postId": first}
        # The outbox relay publishes the event again, as after a crash between its XADD
        # and its row's delete; the fan-out runs again.
        [(_, fields)] = await resources.redis.xrevrange(keys.event_stream(events.POSTS),
                                                        count=1)
        await resources.redis.xadd(keys.event_stream(events.POSTS), fields)
        await fan_out(resources)
        second = await publish(client, resources, author, "twice?")
        assert await next_update(updates) == {"kind": "POST_ADDED", "postId": second}

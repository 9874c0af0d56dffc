"""A user with an open socket is marked present (`keys.live_connections`), which the
fan-out reads before it publishes to them: the mark must come back whenever Redis lost it
(a purge, a restart, an eviction) while the socket is open, and must not outlive it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from strawberry.http.exceptions import WebSocketDisconnected

from pictograph.cache import keys
from pictograph.cache.presence import LEASE_SECONDS
from pictograph.http.sockets import SocketHandler
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.support.graphql import sign_up, user_id
from tests.support.server import served
from tests.support.sockets import kill_pubsub_connections, open_socket, until_subscribed

FEED_UPDATES = "subscription { feedUpdates { kind postId } }"


async def _present(resources: Resources, user: int) -> list[str]:
    members = await resources.redis.zrange(keys.live_connections(user), 0, -1)
    return [m.decode() if isinstance(m, bytes) else m for m in members]


async def _until(resources: Resources, key: str, exists: bool) -> None:
    async with asyncio.timeout(10):
        while True:
            if bool(await resources.redis.exists(key)) == exists:
                return
            await asyncio.sleep(0.01)


async def test_a_lost_presence_mark_is_back_within_one_renewal_and_gone_after_close(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    token = await sign_up(client, "fan")
    fan = decode_id_of(await user_id(client, "fan"), "User")
    key = keys.live_connections(fan)
    async with served(app) as base:
        async with open_socket(base, token) as socket, \
                socket.subscription(FEED_UPDATES):
            await until_subscribed(resources.redis, fan)
            [connection] = await _present(resources, fan)
            # Lost (a purge by the trust check, an eviction): the next renewal of this
            # process's sockets adds it back, lease and key expiry with it.
            assert await resources.redis.delete(key) == 1
            assert await resources.presence.renew() >= 1
            assert await _present(resources, fan) == [connection]
            assert 0 < await resources.redis.ttl(key) <= LEASE_SECONDS
            [(_, lapses)] = await resources.redis.zrange(key, 0, -1, withscores=True)
            assert lapses > 0
        # Closed: the place is given back and no later renewal brings it back.
        await _until(resources, key, exists=False)
        await resources.presence.renew()
        assert not await resources.redis.exists(key)


async def test_the_hub_getting_redis_back_renews_the_presence_at_once(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    if resources.settings.embedded_redis:
        pytest.skip("needs a real Redis whose connections can be killed")
    token = await sign_up(client, "fan")
    fan = decode_id_of(await user_id(client, "fan"), "User")
    key = keys.live_connections(fan)
    async with served(app) as base, open_socket(base, token) as socket, \
            socket.subscription(FEED_UPDATES):
        await until_subscribed(resources.redis, fan)
        [connection] = await _present(resources, fan)
        # A restart loses both the subscriptions and the key: nothing but the hub's
        # reconnect (RENEW_EVERY is far off) brings the key back here.
        await resources.redis.delete(key)
        assert await kill_pubsub_connections(resources.redis) >= 1
        await _until(resources, key, exists=True)
        assert await _present(resources, fan) == [connection]


async def test_a_client_gone_before_its_acknowledgement_gives_its_place_back(
    client: httpx.AsyncClient, app: Starlette, resources: Resources,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed in (a listener, a lease) but the connection_ack could not be sent: the
    socket's close still gives back both, or five such tries would lock the user out of
    sockets for the life of the process."""
    token = await sign_up(client, "hasty")
    send = SocketHandler.send_message

    async def gone_at_the_ack(self: SocketHandler, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "connection_ack":
            raise WebSocketDisconnected
        await send(self, message)

    monkeypatch.setattr(SocketHandler, "send_message", gone_at_the_ack)
    async with served(app) as base:
        for _ in range(2):
            with contextlib.suppress(Exception):
                async with open_socket(base, token):
                    pass
        for _ in range(50):
            if resources.presence.open_sockets == 0:
                break
            await asyncio.sleep(0.1)
        assert resources.presence.open_sockets == 0
        assert not any(c.startswith("live:token:") for c in resources.live._listeners)

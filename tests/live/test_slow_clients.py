"""A client that stops reading cannot make the server hold its messages: the send that
waits on it gives up after SEND_STALL_SECONDS and the socket closes with 1013 ("client
stopped reading"), its subscription, its listeners and its presence with it.

The socket is driven through the app's ASGI interface, where "the client stopped
reading" is exact: the server's send of the first live update never returns."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.cache import keys
from pictograph.cache.pubsub import QUEUE_SIZE, listened
from pictograph.http import sockets
from pictograph.live import publish as live
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.support.graphql import sign_up, user_id
from tests.support.sockets import until_subscribed

SUBSCRIBE = {"id": "1", "type": "subscribe",
             "payload": {"query": "subscription { feedUpdates { kind postId } }"}}


class StalledClient:
    """An ASGI peer that signs in, subscribes, and then never takes another message."""

    def __init__(self, token: str) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for text in ({"type": "connection_init",
                      "payload": {"authorization": f"Bearer {token}"}}, SUBSCRIBE):
            self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(text)})
        self.sent: list[dict[str, Any]] = []
        self.stalled = 0  # sends the server started and never got back from
        self.closed: asyncio.Future[dict[str, Any]] = asyncio.Future()
        self.incoming_connect = True

    async def receive(self) -> dict[str, Any]:
        if self.incoming_connect:
            self.incoming_connect = False
            return {"type": "websocket.connect"}
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            self.closed.set_result(message)
            # The peer sees the close: its side of the socket ends too.
            self.incoming.put_nowait({"type": "websocket.disconnect", "code": message["code"]})
            return
        if message["type"] == "websocket.send" and json.loads(message["text"])["type"] == "next":
            self.stalled += 1
            await asyncio.Event().wait()  # the write buffer is full: never drains
        self.sent.append(message)


def _scope() -> dict[str, Any]:
    return {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
            "path": "/graphql", "raw_path": b"/graphql", "root_path": "", "query_string": b"",
            "headers": [(b"host", b"test"),
                        (b"sec-websocket-protocol", b"graphql-transport-ws")],
            "subprotocols": ["graphql-transport-ws"],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}


async def test_a_client_that_stops_reading_is_closed_with_1013_and_holds_nothing(
    client: httpx.AsyncClient, app: Starlette, resources: Resources,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "SEND_STALL_SECONDS", 0.5)
    token = await sign_up(client, "reader")
    viewer = decode_id_of(await user_id(client, "reader"), "User")
    peer = StalledClient(token)
    served = asyncio.create_task(app(_scope(), peer.receive, peer.send))
    try:
        await until_subscribed(resources.redis, viewer)
        assert await resources.redis.exists(keys.live_connections(viewer))
        # Far more than the hub holds for one subscription, while its send is stuck.
        removed = [{"kind": live.POST_REMOVED, "post_id": n} for n in range(QUEUE_SIZE * 3)]
        for message in removed:
            await live.to_viewers(resources.redis, [viewer], message)
        closed = await asyncio.wait_for(peer.closed, 10)
        await asyncio.wait_for(served, 10)
    finally:
        served.cancel()
        await asyncio.gather(served, return_exceptions=True)

    assert closed["code"] == sockets.TRY_AGAIN_LATER == 1013
    assert closed["reason"] == sockets.STOPPED_READING
    # One message waited on the client, and nothing after it was sent or kept.
    assert peer.stalled == 1
    assert [json.loads(m["text"])["type"] for m in peer.sent
            if m["type"] == "websocket.send"] == ["connection_ack"]
    assert keys.live_viewer(viewer) not in resources.live._listeners
    assert await listened(resources.redis, keys.live_viewer(viewer)) == [0]
    assert not await resources.redis.exists(keys.live_connections(viewer))

"""A graphql-transport-ws client that keeps one socket open for many operations, as a
frontend does: queries, mutations and subscriptions side by side, and the close code
when the server ends the socket."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")


class SocketClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"socket closed: {code} {reason}")
        self.code = code
        self.reason = reason


class Socket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._ids = itertools.count(1)
        self._inboxes: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.closed: asyncio.Future[SocketClosed] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.connection.send(json.dumps({"type": "pong"}))
                    continue
                inbox = self._inboxes.get(message.get("id", ""))
                if inbox is not None:
                    inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            close = self.connection.close_code, self.connection.close_reason or ""
            if not self.closed.done():
                self.closed.set_result(SocketClosed(*close))
            for inbox in self._inboxes.values():
                inbox.put_nowait({"type": "closed"})

    async def execute(self, query: str, variables: dict[str, Any] | None = None,
                      wait: float = 10) -> dict[str, Any]:
        """A query or mutation on this socket; its single result ({"data", "errors"}).
        Raises SocketClosed if the server closes the socket instead of answering."""
        async with self.subscription(query, variables) as results:
            return await asyncio.wait_for(anext(results), wait)

    @contextlib.asynccontextmanager
    async def subscription(
        self, query: str, variables: dict[str, Any] | None = None
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Starts an operation; yields an iterator over its results. An `error` message
        becomes a result with `errors` only; the end of the socket raises SocketClosed."""
        operation_id = str(next(self._ids))
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inboxes[operation_id] = inbox
        if self.closed.done():
            inbox.put_nowait({"type": "closed"})
        else:
            with contextlib.suppress(ConnectionClosed):
                await self.connection.send(json.dumps({
                    "id": operation_id, "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}}}))

        async def results() -> AsyncIterator[dict[str, Any]]:
            while True:
                message = await inbox.get()
                kind = message["type"]
                if kind == "next":
                    yield message["payload"]
                elif kind == "error":
                    yield {"data": None, "errors": message["payload"]}
                    return
                elif kind == "complete":
                    return
                else:
                    raise self.closed.result()

        try:
            yield results()
        finally:
            self._inboxes.pop(operation_id, None)
            if not self.closed.done():
                with contextlib.suppress(ConnectionClosed):
                    await self.connection.send(json.dumps({"id": operation_id,
                                                           "type": "complete"}))

    async def close(self) -> None:
        await self.connection.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def open_socket(base_url: str, token: str | None) -> AsyncIterator[Socket]:
    """A socket past connection_init (acknowledged), or SocketClosed if it was refused."""
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=[PROTOCOL], max_size=2**22) as connection:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            ack = json.loads(await asyncio.wait_for(connection.recv(), 10))
        except ConnectionClosed:
            raise SocketClosed(connection.close_code, connection.close_reason or "") from None
        assert ack["type"] == "connection_ack", ack
        socket = Socket(connection)
        socket._reader = asyncio.create_task(socket._read())
        try:
            yield socket
        finally:
            await socket.close()


SENTINEL = "sentinel"  # a post of the subscriber's own marks the end of what was said


async def updates_until_sentinel(updates: AsyncIterator[dict[str, Any]],
                                 sentinel_id: str) -> list[dict[str, Any]]:
    """The feedUpdates events of a subscription up to the sentinel post's, which ends
    what the test waits to hear."""
    seen = []
    while True:
        result = await asyncio.wait_for(anext(updates), 10)
        assert not result.get("errors"), result
        event = result["data"]["feedUpdates"]
        if event["postId"] == sentinel_id:
            return seen
        seen.append(event)


async def until_subscribed(redis: Any, user_id: int, within: float = 10) -> None:
    """Returns once Redis routes the user's live messages to a subscription: what is
    published from now on reaches it."""
    from pictograph.cache import keys

    await until_listened(redis, keys.live_viewer(user_id), within)


async def until_listened(redis: Any, channel: str, within: float = 10) -> None:
    """Returns once some process listens to the pub/sub channel."""
    from pictograph.cache.pubsub import listened

    async with asyncio.timeout(within):
        while True:
            if (await listened(redis, channel))[0]:
                return
            await asyncio.sleep(0.005)


async def kill_pubsub_connections(redis: Any) -> int:
    """Kills the pub/sub connections subscribed in `redis`'s database, as a Redis restart
    would, and no one else's: CLIENT KILL TYPE pubsub would reach every suite sharing the
    server. (A connection that only subscribes reports the database it last selected.)"""
    if isinstance(redis, RedisCluster):  # the run's own: every node's subscribers
        await redis.initialize()  # a fresh client knows no nodes yet
        killed = 0
        for node in redis.get_nodes():
            for client in await redis.client_list(target_nodes=node):
                if sum(int(client.get(kind, 0)) for kind in ("sub", "psub", "ssub")):
                    killed += int(await redis.client_kill_filter(_id=client["id"],
                                                                 target_nodes=node))
        return killed
    db = int(redis.connection_pool.connection_kwargs.get("db", 0))
    killed = 0
    for client in await redis.client_list():
        if int(client["db"]) == db and sum(int(client.get(kind, 0))
                                           for kind in ("sub", "psub", "ssub")):
            killed += int(await redis.client_kill_filter(_id=client["id"]))
    return killed

"""The stack bench/live.py runs on, with nothing of Pictograph's in it: a Strawberry
schema with one subscription, `feedUpdates { kind postId }`, served as Pictograph serves
it (Strawberry's ASGI GraphQL on Starlette, uvicorn with the same WebSocket options, the
same garbage-collector freeze). Each process listens on one Redis channel and hands each
message to all of its subscriptions through one shared asyncio.Event: the cheapest broadcast
there is, with no per-subscription queue, check or read.

What bench/live_floor.py measures on it is what the libraries alone cost per open
subscription and per delivery: a floor under bench/live.py's figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
import strawberry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from pictograph.heap import startup_heap_frozen

CHANNEL = "floor:posts"
SUBSCRIBED = "floor:subscribed"  # process id -> the subscriptions it holds


class Broadcast:
    """The process's one asyncio.Event that every subscription waits on (each waiter
    costs the Event one future); each message sets it, with the message on it, and puts
    a fresh one in its place. (Not one shared future: a subscription cancelled while
    awaiting it directly would cancel it for every other.)"""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    async def next(self) -> dict[str, Any]:
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        await event.wait()
        return event.message  # type: ignore[attr-defined, no-any-return]

    def publish(self, message: dict[str, Any]) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.message = message  # type: ignore[attr-defined]
            event.set()


BROADCAST = Broadcast()
SUBSCRIPTIONS = [0]  # open in this process


@strawberry.type
class FeedUpdate:
    kind: str
    post_id: strawberry.ID


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def feed_updates(self) -> AsyncIterator[FeedUpdate]:
        SUBSCRIPTIONS[0] += 1
        try:
            while True:
                message = await BROADCAST.next()
                yield FeedUpdate(kind="POST_ADDED", post_id=strawberry.ID(message["postId"]))
        finally:
            SUBSCRIPTIONS[0] -= 1


async def _report(redis: Redis) -> None:
    """This process's count of subscriptions, in a hash the bench sums."""
    while True:
        await redis.hset(SUBSCRIBED, str(os.getpid()), SUBSCRIPTIONS[0])
        await redis.expire(SUBSCRIBED, 5)  # gone soon after the last process is
        await asyncio.sleep(0.2)


async def _listen(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    async for message in pubsub.listen():
        if message["type"] == "message":
            BROADCAST.publish(orjson.loads(message["data"]))


async def _ready(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@contextlib.asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    redis = Redis.from_url(os.environ["FLOOR_REDIS_URL"])
    tasks = [asyncio.create_task(_listen(redis)), asyncio.create_task(_report(redis))]
    try:
        with startup_heap_frozen():
            yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()


def create_app() -> Starlette:
    schema = strawberry.Schema(query=Query, subscription=Subscription)
    graphql = GraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
    return Starlette(routes=[Route("/readyz", _ready), Route("/graphql", graphql),
                             WebSocketRoute("/graphql", graphql)], lifespan=_lifespan)

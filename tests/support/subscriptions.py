"""A feedUpdates subscription run in process (the schema's own subscribe, no socket), fed
live messages exactly as the hub delivers them, and read up to a sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from pictograph.context import Context
from pictograph.live import publish as live
from pictograph.resources import Resources
from pictograph.schema import build_schema
from pictograph.schema.node import decode_id_of
from tests.support.sockets import until_subscribed

FEED_UPDATES = "subscription { feedUpdates { kind postId } }"
SENTINEL_POST = 1  # a removal of a post that never existed marks the end of a delivery


class Subscription:
    """A feedUpdates subscription run in process, fed messages as the hub delivers them."""

    def __init__(self, resources: Resources, viewer: int, stream: Any) -> None:
        self.resources = resources
        self.viewer = viewer
        self.stream = stream
        self.pending = asyncio.ensure_future(anext(stream))

    async def send(self, *messages: dict[str, Any]) -> None:
        for message in messages:
            await live.to_viewers(self.resources.redis, [self.viewer],
                                  {"author_id": 0, **message})

    async def said(self) -> list[tuple[str, int]]:
        """(kind, post) of everything said up to a sentinel sent now."""
        await self.send({"kind": live.POST_REMOVED, "post_id": SENTINEL_POST})
        said = []
        while True:
            result = await asyncio.wait_for(self.pending, 10)
            assert not result.errors, result.errors
            update = result.data["feedUpdates"]
            self.pending = asyncio.ensure_future(anext(self.stream))
            post = decode_id_of(update["postId"], "Post")
            if update["kind"] == "POST_REMOVED" and post == SENTINEL_POST:
                return said
            said.append((update["kind"], post))

    async def ending(self) -> list[str]:
        """The error codes the subscription ends with."""
        result = await asyncio.wait_for(self.pending, 10)
        return [error.extensions["code"] for error in result.errors or []]


@asynccontextmanager
async def subscribed(resources: Resources, token: str, viewer_id: str
                     ) -> AsyncGenerator[Subscription, None]:
    stream = await build_schema().subscribe(
        FEED_UPDATES, context_value=Context(resources, None, token, "req-live-kills"))
    viewer = decode_id_of(viewer_id, "User")
    subscription = Subscription(resources, viewer, stream)
    try:
        await until_subscribed(resources.redis, viewer)
        yield subscription
    finally:
        subscription.pending.cancel()
        await asyncio.gather(subscription.pending, return_exceptions=True)
        await stream.aclose()


def added(post: int) -> dict[str, Any]:
    return {"kind": live.POST_ADDED, "post_id": post}

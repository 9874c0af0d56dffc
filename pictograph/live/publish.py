"""What the rest of the system says to live subscriptions. Messages carry ids only:
each subscription decides, against the live graph, what its viewer may see."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.pubsub import publish, publish_command

POST_ADDED = "post_added"
POST_REMOVED = "post_removed"
AUTHOR_GONE = "author_gone"  # unfollowed, removed or blocked: the author's posts go
GRAPH_CHANGED = "graph_changed"  # a follow: which celebrities to listen to may change
REVOKED = "revoked"


async def to_viewers(redis: Redis, viewer_ids: Iterable[int], message: dict) -> None:
    data = orjson.dumps(message)
    command = publish_command(redis)  # SPUBLISH on a cluster: to the channel's node
    async with redis.pipeline(transaction=False) as pipe:
        for viewer_id in viewer_ids:
            # By name: a cluster's pipeline blocks publish().
            pipe.execute_command(command, keys.live_viewer(viewer_id), data)
        await pipe.execute()


async def to_author_followers(redis: Redis, author_id: int, message: dict) -> None:
    await publish(redis, keys.live_author(author_id), orjson.dumps(message))


async def token_revoked(redis: Redis, token_hash: str) -> None:
    await publish(redis, keys.live_token(token_hash), orjson.dumps({"kind": REVOKED}))

"""Driving the fan-out worker the way `pictograph worker` does, until it is idle."""

from __future__ import annotations

from typing import Any

from pictograph.resources import Resources
from pictograph.workers.fanout import fanout_consumers
from pictograph.workers.streams import StreamConsumer

FEED = """query($first: Int, $after: String) {
  feed(first: $first, after: $after) {
    edges { cursor node { id caption author { username }
                          media(size: THUMBNAIL) { url } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def consumers(resources: Resources, **options: Any) -> list[StreamConsumer]:
    return fanout_consumers(resources, **{"block_ms": 1, **options})


async def fan_out(resources: Resources, **options: Any) -> int:
    total = 0
    for consumer in consumers(resources, **options):
        await consumer.ensure_group()
        while handled := await consumer.step():
            total += handled
    return total


async def publish(client, resources: Resources, token: str, caption: str) -> str:
    """A tiny real photo through upload, processing and fan-out; returns the post id."""
    from tests.support.photos import jpeg, post_photo, process_media

    result = await post_photo(client, token, jpeg(64, 48), caption=caption)
    assert not result.get("errors"), result
    await process_media(resources)
    await fan_out(resources)
    return result["data"]["createPost"]["id"]


async def feed_captions(client, token: str, first: int = 20, after: str | None = None):
    from tests.support.graphql import gql

    result = await gql(client, FEED, {"first": first, "after": after}, token=token)
    assert not result.get("errors"), result
    connection = result["data"]["feed"]
    return [e["node"]["caption"] for e in connection["edges"]], connection["pageInfo"]

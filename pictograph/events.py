"""Domain events: written to an outbox row in the change's own transaction, then
published to a Redis Stream. A crash or a Redis outage between the two leaves the row,
which the outbox relay publishes later, so no committed change loses its event."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.models import OutboxEvent

log = logging.getLogger(__name__)

FOLLOWS = "follows"  # the follow graph changed
MEDIA = "media"  # a post's photo waits for processing
POSTS = "posts"  # a post became visible, or went away
STREAM_MAX_LENGTH = 100_000


async def record(stream: str, kind: str, **data: Any) -> OutboxEvent:
    """Call inside the transaction that makes the change."""
    return await OutboxEvent.create(stream=stream, payload={"kind": kind, **data})


async def publish(
    redis: Redis,
    events: Sequence[OutboxEvent],
    before_publish: Callable[[OutboxEvent], Awaitable[None]] | None = None,
) -> None:
    """XADDs each event and deletes its outbox row. `before_publish` runs first for
    each event (the follow graph brings its cache up to date there)."""
    for event in events:
        if before_publish is not None:
            await before_publish(event)
        await redis.xadd(
            keys.event_stream(event.stream),
            {"event_id": str(event.id), "kind": event.payload["kind"],
             "data": orjson.dumps(event.payload)},
            maxlen=STREAM_MAX_LENGTH,
            approximate=True,
        )
        await OutboxEvent.filter(id=event.id).delete()


async def leftovers(older_than: timedelta, limit: int = 500) -> list[OutboxEvent]:
    cutoff = datetime.now(UTC) - older_than
    return await OutboxEvent.filter(created_at__lte=cutoff).order_by("id").limit(limit)


def decode(fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry's payload, as a consumer sees it."""
    return {"event_id": int(fields["event_id"]), **orjson.loads(fields["data"])}

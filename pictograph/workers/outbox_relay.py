"""Publishes events whose change committed but whose request could not publish them
(a crash, a Redis outage), after bringing the follow graph cache up to date."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from redis.exceptions import RedisError

from pictograph import events
from pictograph.graph.changes import GraphChanges
from pictograph.resources import Resources
from pictograph.workers.periodic import every, exclusively

log = logging.getLogger(__name__)

# Requests publish their own events within milliseconds; only older rows are orphans.
ORPHAN_AGE = timedelta(seconds=2)
INTERVAL = 1.0


async def relay_once(resources: Resources, older_than: timedelta = ORPHAN_AGE) -> int | None:
    """Publishes orphaned events; None when another process is relaying right now."""

    async def relay() -> int:
        orphans = await events.leftovers(older_than)
        if orphans:
            changes = GraphChanges(resources)
            await events.publish(resources.redis, orphans, before_publish=changes.resync)
            log.info("outbox relay published %d orphaned events", len(orphans))
        return len(orphans)

    return await exclusively(resources, "outbox-relay", 60, relay)


async def relay_outbox(resources: Resources, stop: asyncio.Event) -> None:
    async def round_() -> None:
        try:
            await relay_once(resources)
        except RedisError as error:
            # Redis is away: exactly when orphans pile up. Try again next round.
            log.warning("outbox relay: redis unavailable (%s)", type(error).__name__)

    await every(INTERVAL, stop, round_)

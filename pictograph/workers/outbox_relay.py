"""Publishes events whose change committed but whose request could not publish them
(a crash, a Redis outage), after bringing the follow graph cache up to date."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import LockError, RedisError

from pictograph import events
from pictograph.cache import keys
from pictograph.graph.changes import GraphChanges

if TYPE_CHECKING:
    from pictograph.resources import Resources

log = logging.getLogger(__name__)

# Requests publish their own events within milliseconds; only older rows are orphans.
ORPHAN_AGE = timedelta(seconds=2)
INTERVAL = 1.0


async def relay_once(resources: Resources, older_than: timedelta = ORPHAN_AGE) -> int | None:
    """Publishes orphaned events; None when another process is relaying right now."""
    lock = resources.redis.lock(keys.worker_lock("outbox-relay"), timeout=60, blocking=False)
    if not await lock.acquire():
        return None
    try:
        orphans = await events.leftovers(older_than)
        if orphans:
            changes = GraphChanges(resources)
            await events.publish(resources.redis, orphans, before_publish=changes.resync)
            log.info("outbox relay published %d orphaned events", len(orphans))
        resources.metrics.worker_jobs.labels("outbox-relay", "ok").inc()
        return len(orphans)
    finally:
        try:
            await lock.release()
        except LockError:
            pass


async def relay_outbox(resources: Resources, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await relay_once(resources)
        except RedisError as error:
            # Redis is away: exactly when orphans pile up. Try again next round.
            log.warning("outbox relay: redis unavailable (%s)", type(error).__name__)
        try:
            await asyncio.wait_for(stop.wait(), INTERVAL)
        except TimeoutError:
            pass

"""Removes what uploads and deletions left in storage: tickets that expired unused,
and objects whose rows are gone (deleted posts, processed originals)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redis.exceptions import LockError
from tortoise.transactions import in_transaction

from pictograph.cache import keys
from pictograph.models import Upload
from pictograph.posts import garbage

if TYPE_CHECKING:
    from pictograph.resources import Resources

log = logging.getLogger(__name__)


async def sweep_storage_once(resources: Resources) -> int | None:
    lock = resources.redis.lock(keys.worker_lock("storage-sweeper"), timeout=300,
                                blocking=False)
    if not await lock.acquire():
        return None
    try:
        async with in_transaction():
            # After the grace: a PUT that started before the expiry may still be arriving.
            abandoned = await Upload.filter(
                post_id__isnull=True, expires_at__lte=datetime.now(UTC) - garbage.UPLOAD_GRACE
            ).select_for_update().limit(500)
            await garbage.discard(upload.object_key for upload in abandoned)
            await Upload.filter(id__in=[upload.id for upload in abandoned]).delete()
        removed = await garbage.collect(resources.storage)
        if abandoned or removed:
            log.info("storage sweeper: %d abandoned uploads, %d objects removed",
                     len(abandoned), removed)
        resources.metrics.worker_jobs.labels("storage-sweeper", "ok").inc()
        return removed
    finally:
        try:
            await lock.release()
        except LockError:
            pass


async def sweep_storage(resources: Resources, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await sweep_storage_once(resources)
        try:
            await asyncio.wait_for(stop.wait(), resources.settings.storage_sweep_interval)
        except TimeoutError:
            pass

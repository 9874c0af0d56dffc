"""Removes what uploads and deletions left in storage: tickets that expired unused,
and objects whose rows are gone (deleted posts, processed originals)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from pictograph.models import Upload
from pictograph.posts import garbage
from pictograph.resources import Resources
from pictograph.workers.periodic import every, exclusively

log = logging.getLogger(__name__)


async def sweep_storage_once(resources: Resources) -> int | None:
    """One sweep, unless another process holds the sweep lock (then None)."""

    async def sweep() -> int:
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
        return removed

    return await exclusively(resources, "storage-sweeper", 300, sweep)


async def sweep_storage(resources: Resources, stop: asyncio.Event) -> None:
    await every(resources.settings.storage_sweep_interval, stop,
                lambda: sweep_storage_once(resources))

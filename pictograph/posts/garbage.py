"""Deleting objects that the database no longer points at."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from pictograph.models import StorageGarbage, Upload
from pictograph.storage import ObjectStorage

log = logging.getLogger(__name__)


# How long after its ticket expires an upload can still be arriving (a slow PUT that
# started in time).
UPLOAD_GRACE = timedelta(minutes=5)


async def discard(keys: Iterable[str]) -> list[StorageGarbage]:
    """Call inside the transaction that makes the objects useless."""
    return [await StorageGarbage.create(object_key=key) for key in keys]


async def discard_original(upload: Upload) -> list[StorageGarbage]:
    """An original goes now, and once more after its ticket can no longer write it:
    a client may PUT again with a ticket that is still valid."""
    return [
        await StorageGarbage.create(object_key=upload.object_key),
        await StorageGarbage.create(object_key=upload.object_key,
                                    not_before=upload.expires_at + UPLOAD_GRACE),
    ]


async def collect(storage: ObjectStorage, rows: list[StorageGarbage] | None = None,
                  limit: int = 500) -> int:
    """Deletes the objects, then their rows. A failure leaves the row for the sweeper."""
    if rows is None:
        rows = await StorageGarbage.filter(
            Q(not_before__isnull=True) | Q(not_before__lte=datetime.now(UTC))
        ).order_by("id").limit(limit)
    rows = [row for row in rows if row.not_before is None
            or row.not_before <= datetime.now(UTC)]
    removed = 0
    for row in rows:
        try:
            await storage.delete(row.object_key)
        except Exception:
            log.warning("could not delete object %s; will retry", row.object_key)
            continue
        await StorageGarbage.filter(id=row.id).delete()
        removed += 1
    return removed

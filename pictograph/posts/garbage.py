"""Deleting objects that the database no longer points at."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pictograph.models import StorageGarbage
from pictograph.storage import ObjectStorage

log = logging.getLogger(__name__)


async def discard(keys: Iterable[str]) -> list[StorageGarbage]:
    """Call inside the transaction that makes the objects useless."""
    return [await StorageGarbage.create(object_key=key) for key in keys]


async def collect(storage: ObjectStorage, rows: list[StorageGarbage] | None = None,
                  limit: int = 500) -> int:
    """Deletes the objects, then their rows. A failure leaves the row for the sweeper."""
    if rows is None:
        rows = await StorageGarbage.all().order_by("id").limit(limit)
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

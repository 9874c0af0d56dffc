"""Deletes expired bearer tokens, so the token table does not grow without bound."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from redis.exceptions import LockError

from pictograph.accounts.sessions import delete_expired_tokens
from pictograph.cache import keys

if TYPE_CHECKING:
    from pictograph.resources import Resources

log = logging.getLogger(__name__)


async def sweep_once(resources: Resources) -> int | None:
    """One sweep, unless another process holds the sweep lock (then None)."""
    lock = resources.redis.lock(keys.worker_lock("token-sweeper"), timeout=300, blocking=False)
    if not await lock.acquire():
        return None
    try:
        removed = await delete_expired_tokens()
    finally:
        try:
            await lock.release()
        except LockError:
            pass  # it expired while we swept; nothing to release
    if removed:
        log.info("token sweeper removed %d expired tokens", removed)
    resources.metrics.worker_jobs.labels("token-sweeper", "ok").inc()
    return removed


async def sweep_expired_tokens(resources: Resources, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await sweep_once(resources)
        try:
            await asyncio.wait_for(stop.wait(), resources.settings.token_sweep_interval)
        except TimeoutError:
            pass

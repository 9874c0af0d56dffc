"""Deletes expired bearer tokens, so the token table does not grow without bound."""

from __future__ import annotations

import asyncio
import logging

from pictograph.accounts.sessions import delete_expired_tokens
from pictograph.resources import Resources
from pictograph.workers.periodic import every, exclusively

log = logging.getLogger(__name__)


async def sweep_once(resources: Resources) -> int | None:
    """One sweep, unless another process holds the sweep lock (then None)."""
    removed = await exclusively(resources, "token-sweeper", 300, delete_expired_tokens)
    if removed:
        log.info("token sweeper removed %d expired tokens", removed)
    return removed


async def sweep_expired_tokens(resources: Resources, stop: asyncio.Event) -> None:
    await every(resources.settings.token_sweep_interval, stop, lambda: sweep_once(resources))

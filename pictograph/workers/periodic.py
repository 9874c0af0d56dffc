"""Jobs that run every so often in every worker process, and in one process at a time:
each round takes a Redis lock named after the job, or leaves the round to whoever holds
it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import LockError

from pictograph.cache import keys
from pictograph.resources import Resources

T = TypeVar("T")


async def exclusively(resources: Resources, name: str, lock_seconds: float,
                      job: Callable[[], Awaitable[T]]) -> T | None:
    """Runs `job` unless another process holds the job's lock (then None). The lock
    lapses after `lock_seconds`, so a process that dies holding it delays one round."""
    lock = resources.redis.lock(keys.worker_lock(name), timeout=lock_seconds, blocking=False)
    if not await lock.acquire():
        return None
    try:
        result = await job()
    finally:
        try:
            await lock.release()
        except LockError:
            pass  # it lapsed while the job ran; nothing to release
    resources.metrics.worker_jobs.labels(name, "ok").inc()
    return result


async def every(interval: float, stop: asyncio.Event, round_: Callable[[], Awaitable[object]]
                ) -> None:
    """Runs `round_`, then waits `interval` seconds (or until stopped), until stopped."""
    while not stop.is_set():
        await round_()
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass

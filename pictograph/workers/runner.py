"""Starts every background worker as a task and stops them together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from pictograph.db import using_database
from pictograph.outages import unavailable_service
from pictograph.resources import Resources
from pictograph.workers.fanout import run_fanout_worker
from pictograph.workers.media import run_media_worker
from pictograph.workers.outbox_relay import relay_outbox
from pictograph.workers.storage_sweeper import sweep_storage
from pictograph.workers.token_sweeper import sweep_expired_tokens

log = logging.getLogger(__name__)

Worker = Callable[[Resources, asyncio.Event], Awaitable[None]]
WORKERS: dict[str, Worker] = {
    "token-sweeper": sweep_expired_tokens,
    "outbox-relay": relay_outbox,
    "media": run_media_worker,
    "fanout": run_fanout_worker,
    "storage-sweeper": sweep_storage,
}


async def _supervise(name: str, worker: Worker, resources: Resources, stop: asyncio.Event) -> None:
    """Keeps one worker alive: a crash is logged and the worker restarts after a pause."""
    with using_database(resources.database):
        while not stop.is_set():
            try:
                await worker(resources, stop)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                service = unavailable_service(error)
                if service is not None:  # an outage: a line per restart, not a traceback
                    log.warning("worker %s stopped: %s unavailable (%s); restarting in 1 s",
                                name, service, type(error).__name__)
                else:
                    log.exception("worker %s crashed; restarting in 1 s", name)
                resources.metrics.worker_jobs.labels(name, "crashed").inc()
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass


@asynccontextmanager
async def run_workers(resources: Resources) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_supervise(name, worker, resources, stop), name=f"worker:{name}")
        for name, worker in WORKERS.items()
    ]
    log.info("workers started: %s", ", ".join(WORKERS))
    try:
        yield stop
    finally:
        stop.set()
        log.info("workers stopping: finishing the jobs they hold")
        # Workers finish the step they are on and return; give them a moment first.
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("workers stopped")

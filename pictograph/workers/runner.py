"""Starts every background worker as a task and stops them together: a worker that
holds a job gets up to PICTOGRAPH_SHUTDOWN_GRACE seconds to finish it, one that holds
none is stopped at once (see jobs.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from pictograph.db import using_database
from pictograph.outages import unavailable_service
from pictograph.resources import Resources
from pictograph.workers.fanout import run_fanout_worker
from pictograph.workers.jobs import Jobs, count_jobs_in
from pictograph.workers.media import run_media_worker
from pictograph.workers.outbox_relay import relay_outbox
from pictograph.workers.storage_sweeper import sweep_storage
from pictograph.workers.token_sweeper import sweep_expired_tokens

log = logging.getLogger(__name__)

# A task cancelled at stop may still await something on its way out (a lock's release in
# a `finally`, on a Redis that does not answer): it is cancelled again this often.
CANCEL_AGAIN = 0.5
CANCEL_TIMES = 10

Worker = Callable[[Resources, asyncio.Event], Awaitable[None]]
WORKERS: dict[str, Worker] = {
    "token-sweeper": sweep_expired_tokens,
    "outbox-relay": relay_outbox,
    "media": run_media_worker,
    "fanout": run_fanout_worker,
    "storage-sweeper": sweep_storage,
}


async def _supervise(name: str, worker: Worker, resources: Resources, stop: asyncio.Event,
                    jobs: Jobs) -> None:
    """Keeps one worker alive: a crash is logged and the worker restarts after a pause."""
    count_jobs_in(jobs)
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
    jobs = {name: Jobs() for name in WORKERS}
    tasks = {
        name: asyncio.create_task(_supervise(name, worker, resources, stop, jobs[name]),
                                  name=f"worker:{name}")
        for name, worker in WORKERS.items()
    }
    log.info("workers started: %s", ", ".join(WORKERS))
    try:
        yield stop
    finally:
        stop.set()
        grace = resources.settings.shutdown_grace
        log.info("workers stopping: %d jobs in flight may take up to %d s to finish; "
                 "the workers that hold none stop now",
                 sum(j.held for j in jobs.values()), grace)
        cut = await asyncio.gather(*(_wind_down(name, tasks[name], jobs[name], grace)
                                     for name in WORKERS))
        log.info("workers stopped%s", f"; cut short: {', '.join(n for n in cut if n)}"
                 if any(cut) else "")


async def _wind_down(name: str, task: asyncio.Task[None], jobs: Jobs, grace: float
                     ) -> str | None:
    """Stops the worker once it holds no job, or at the grace's end: then its name."""
    try:
        async with asyncio.timeout(grace):
            await jobs.until_none()
        late = None
    except TimeoutError:
        late = name
        log.warning("worker %s: its job did not finish within %s s; stopped (the message "
                    "stays pending for another worker)", name, grace)
    for _ in range(CANCEL_TIMES):
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=CANCEL_AGAIN)
    if not task.done():
        log.warning("worker %s did not stop when cancelled; left behind", name)
    return late

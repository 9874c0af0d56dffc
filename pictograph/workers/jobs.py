"""Which workers hold a job: on SIGTERM a job in flight may finish, and a worker that
holds none stops at once, wherever it waits (on Redis, on the database, or asleep).

A job is a stream message from the moment a consumer takes it up to its acknowledgement.
Cut in the middle it stays pending and another worker does it again, so it is worth
finishing. Everything else a worker does (waiting for messages, retrying after an
outage, a periodic round, which is a transaction or is done again next round) is worth
nothing to finish, and with a service away it is what would keep a stopping process
waiting on timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Jobs:
    """The jobs held by one worker's tasks."""

    def __init__(self) -> None:
        self.held = 0
        self._none = asyncio.Event()
        self._none.set()

    @contextmanager
    def holding(self) -> Iterator[None]:
        self.held += 1
        self._none.clear()
        try:
            yield
        finally:
            self.held -= 1
            if not self.held:
                self._none.set()

    async def until_none(self) -> None:
        """Returns at a moment when no job is held: a worker cancelled right then (before
        the caller awaits anything) loses no job in the middle."""
        while self.held:
            await self._none.wait()


_current: ContextVar[Jobs | None] = ContextVar("pictograph_worker_jobs", default=None)


def count_jobs_in(jobs: Jobs) -> None:
    """Jobs held from now on by this task, and the tasks it starts, count in `jobs`."""
    _current.set(jobs)


@contextmanager
def job() -> Iterator[None]:
    """Marks a job in flight (nothing, outside a worker run by workers.runner)."""
    jobs = _current.get()
    if jobs is None:
        yield
        return
    with jobs.holding():
        yield

"""Named points where a test can hold an operation in the middle.

Races are tested by forcing their interleavings, not by timing: the code under test says
`await checkpoint("name")` at the step where another actor could slip in, and a test that
holds that name makes the operation wait there while it acts, then lets it go. Nothing is
held unless a test asks (one dict lookup otherwise), and a hold is per process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

_holds: dict[str, Hold] = {}


@dataclass
class Hold:
    """One held checkpoint: `reached` is set when an operation arrives (and waits);
    `release()` lets it, and every later arrival, go on."""

    name: str
    times: int = 1  # how many arrivals wait; later ones pass straight through
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: int = 0

    def release(self) -> None:
        self._released.set()

    async def wait_reached(self) -> None:
        """Waits until an operation has arrived; a test bounds it with asyncio.timeout."""
        await self.reached.wait()


async def checkpoint(name: str) -> None:
    hold = _holds.get(name)
    if hold is None:
        return
    hold.arrivals += 1
    if hold.arrivals > hold.times:
        return
    hold.reached.set()
    await hold._released.wait()


@asynccontextmanager
async def holding(name: str, times: int = 1) -> AsyncIterator[Hold]:
    """Holds operations at `name` for the block; released at its end in any case."""
    if name in _holds:
        raise RuntimeError(f"checkpoint {name!r} is already held")
    hold = _holds[name] = Hold(name, times)
    try:
        yield hold
    finally:
        hold.release()
        _holds.pop(name, None)

"""A serving process's startup heap is frozen out of the garbage collector's full passes
while the app serves (pictograph.heap), and handed back when the app stops."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from pictograph.app import create_app
from pictograph.heap import SurvivorsFrozen
from pictograph.settings import Settings
from tests.conftest import FAST_HASHING


def collected_by_passes(thing: object) -> bool:
    """Whether `thing` is in a generation the collector walks (not the frozen one)."""
    return any(other is thing for generation in range(3)
               for other in gc.get_objects(generation))


async def test_the_startup_heap_is_frozen_while_the_app_serves(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, run_workers=False, **FAST_HASHING))
    async with app.router.lifespan_context(app):
        resources = app.state.resources  # made at startup, alive as long as the app
        assert gc.is_tracked(resources) and gc.get_freeze_count() > 0
        assert not collected_by_passes(resources)
        gc.collect()  # a full pass skips it, and it stays frozen
        assert not collected_by_passes(resources)
    assert collected_by_passes(resources)


class Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_what_survives_a_full_pass_is_frozen_until_the_heap_doubles(
        tmp_path: Path) -> None:
    # Another app serving in this process (the suite's) freezes and walks by its own
    # measure: left out while this one's is watched.
    others = [c for c in gc.callbacks if isinstance(c, SurvivorsFrozen)]
    for other in others:
        gc.callbacks.remove(other)
    try:
        await _survivors_frozen_until_the_heap_doubles(tmp_path)
    finally:
        gc.callbacks.extend(others)


async def _survivors_frozen_until_the_heap_doubles(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, run_workers=False, **FAST_HASHING))
    async with app.router.lifespan_context(app):
        [survivors] = [c for c in gc.callbacks if isinstance(c, SurvivorsFrozen)]
        alive = Cycle()  # made while serving, as an open socket's objects are
        assert collected_by_passes(alive)
        gc.collect()
        assert not collected_by_passes(alive)  # the next full passes skip it
        # Once garbage, it stays: frozen, no pass looks at it...
        gone = weakref.ref(alive)
        del alive
        gc.collect()
        assert gone() is not None
        # ...until the heap has grown WHOLE_WALK_GROWTH times over since a pass walked
        # everything (here: said to have been tiny then), when a pass walks it all again.
        walks = survivors.whole_walks
        survivors.walked = 1
        gc.collect()
        assert gone() is None
        assert survivors.whole_walks == walks + 1
        assert survivors.walked > 1
    assert survivors not in gc.callbacks

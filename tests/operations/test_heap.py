"""A serving process's startup heap is frozen out of the garbage collector's full passes
while the app serves (pictograph.heap), and handed back when the app stops."""

from __future__ import annotations

import gc
from pathlib import Path

from pictograph.app import create_app
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

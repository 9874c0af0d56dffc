"""The startup heap kept out of the cyclic garbage collector's full passes.

A serving process holds a large heap from startup on (the GraphQL schema, the ORM's
models, imported modules), and none of it is ever garbage. Under load, objects of the
requests in flight outlive young collections often enough that CPython runs a full
collection every second or so, and each one walked that whole heap: about 50-80 ms with
the event loop stopped, which every request in flight waited out (the p99 of a warm
read was that pause). gc.freeze() moves what is alive once startup is done into the
permanent generation that collections skip, as Instagram does for its Django servers
(https://docs.python.org/3/library/gc.html#gc.freeze), so a full pass walks only what
came after. On the way out it is handed back, so that the cycles among it can be
collected when a process (a test run, say) goes on without this app.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def startup_heap_frozen() -> Iterator[None]:
    gc.collect()  # startup's own garbage goes first: frozen, it would never be freed
    gc.freeze()
    log.debug("froze %d objects of the startup heap", gc.get_freeze_count())
    try:
        yield
    finally:
        gc.unfreeze()

"""The long-lived heap kept out of the cyclic garbage collector's full passes.

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

Open sockets are the same kind of heap, grown after startup, for as long as each socket
is open. At 5,000 sockets a process's full pass walked them all, 2 to 3.5 s with the
loop stopped, and a live update's burst of deliveries (whose objects in flight outlive
young collections) set off one or two such passes per post: bench/live.py at 10,000
subscribers spent some 6.5 s of each API process in full passes while three posts were
delivered. So what survives a full pass is frozen as well (SurvivorsFrozen), and the
next pass walks only what came after it (0.04 to 0.6 s in the same bench). Something
frozen that later becomes cyclic garbage (a closed socket's objects) is not collected
while frozen: once the heap has doubled since the last pass that walked everything, the
next full pass walks everything again, so frozen garbage never outgrows the live heap,
and the whole walks cost, amortised, a constant per object.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# A full pass walks the frozen heap again once the process's heap has grown this many
# times over since the last pass that did: a bound on frozen garbage (at most the live
# heap's size), and a doubling, so the rare whole walks cost a constant per object.
WHOLE_WALK_GROWTH = 2


class SurvivorsFrozen:
    """A gc callback: after each full pass, what survived it is frozen; a pass walks the
    frozen heap too once the heap has grown WHOLE_WALK_GROWTH times over since the last
    pass that did. The heap is measured in pymalloc's blocks (sys.getallocatedblocks, a
    look at each arena), not gc.get_freeze_count(), which walks the frozen list at a
    cache miss per object: some 100 ms at 5,000 sockets."""

    def __init__(self) -> None:
        self.walked = sys.getallocatedblocks()  # the heap at the last pass over everything
        self.whole_walks = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            blocks = sys.getallocatedblocks()
            if blocks > WHOLE_WALK_GROWTH * self.walked:
                gc.unfreeze()  # into the oldest generation: this pass walks it
                self.whole_walks += 1
                self.walked = blocks
        else:
            # The pass is over: what it left is alive now, and most of it will be until
            # its socket (or cache entry) goes.
            gc.freeze()


@contextmanager
def startup_heap_frozen() -> Iterator[None]:
    gc.collect()  # startup's own garbage goes first: frozen, it would never be freed
    gc.freeze()
    log.debug("froze %d objects of the startup heap", gc.get_freeze_count())
    survivors = SurvivorsFrozen()
    gc.callbacks.append(survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(survivors)
        gc.unfreeze()

"""Time-sortable 53-bit ids (a snowflake): milliseconds since 2024, then a node number,
then a sequence within the millisecond.

53 bits keep an id exact in a JavaScript number and in a Redis sorted-set score (a
double), so feeds and lists order by id without asking the database. A process mints
ids for a database only on a node it holds a lease on in that same database
(node_lease.py), and only until that lease may have lapsed, so two processes never
mint the same id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tortoise.context import TortoiseContext, get_current_context

from pictograph.errors import UNAVAILABLE_MESSAGE, ServiceUnavailable

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
# 41 bits of milliseconds (69 years from 2024), 8 of node, 4 of sequence. 256 nodes
# leave room for every API process, worker and seed of a deployment (one node per
# process, and `serve --processes N` will make each uvicorn worker one), where the
# former 64 could run out. 16 ids per millisecond per process (16,000 a second) is
# still far more than one process inserts rows; a burst past it borrows the next
# milliseconds, so ids never repeat, they only run a little ahead of the clock.
# Milliseconds keep their place, so ids keep their order and id_time_ms is unchanged.
NODE_BITS = 8
SEQUENCE_BITS = 4
NODES = 1 << NODE_BITS
PER_MILLISECOND = 1 << SEQUENCE_BITS


class IdGenerator:
    def __init__(self, node: int) -> None:
        self.node = node % NODES
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next(self) -> int:
        with self._lock:
            ms = time.time_ns() // 1_000_000 - EPOCH_MS
            if ms <= self._last_ms:
                # Same millisecond (or the clock stepped back): count on, borrowing the
                # next millisecond when this one is full, so ids never repeat or go back.
                ms = self._last_ms
                self._sequence += 1
                if self._sequence == PER_MILLISECOND:
                    ms += 1
                    self._sequence = 0
            else:
                self._sequence = 0
            self._last_ms = ms
            return (ms << (NODE_BITS + SEQUENCE_BITS)) | (self.node << SEQUENCE_BITS) | (
                self._sequence
            )


class NoIdNode(ServiceUnavailable):
    """This process holds no live lease on an id node for the database in use: it could
    not claim one, or could not renew its lease in time (the database that keeps the
    leases did not answer). Retryable: it mints again once the lease is renewed."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE_MESSAGE)


class LeasedIds:
    """Mints one database's ids on the node leased there, up to the lease's end.

    The end is compared with each id's own millisecond, not only with the clock: a
    burst that borrowed milliseconds ahead must not reach into time after the lease,
    when another process may have the node."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._generator: IdGenerator | None = None
        self._until_ms = 0  # milliseconds since 1970 from which ids are not ours

    @property
    def node(self) -> int | None:
        return self._generator.node if self._generator is not None else None

    def hold(self, node: int, until_ms: int) -> None:
        if self._generator is None or self._generator.node != node:
            self._generator = IdGenerator(node)
        self._until_ms = until_ms

    def drop(self) -> None:
        self._until_ms = 0

    def next(self) -> int:
        generator = self._generator
        if generator is None or self.clock() * 1000 >= self._until_ms:
            raise NoIdNode()
        value = generator.next()
        if id_time_ms(value) >= self._until_ms:
            raise NoIdNode()
        return value


# Each database's minter, found through the ORM context the caller is bound to. Not
# one per process: a process may serve several apps at once (the test suite does),
# each with its own database and its own lease there.
_minters: dict[TortoiseContext, LeasedIds] = {}


def register(database: TortoiseContext, ids: LeasedIds) -> None:
    _minters[database] = ids


def unregister(database: TortoiseContext) -> None:
    _minters.pop(database, None)


def new_id() -> int:
    ids = _minters.get(get_current_context())  # type: ignore[arg-type]
    if ids is None:
        raise NoIdNode()
    return ids.next()


def id_time_ms(value: int) -> int:
    return (value >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS


def first_id_at(time_ms: int) -> int:
    """The smallest id minted at `time_ms` (milliseconds since 1970) or later."""
    return max(time_ms - EPOCH_MS, 0) << (NODE_BITS + SEQUENCE_BITS)


def id_node(value: int) -> int:
    return (value >> SEQUENCE_BITS) % NODES

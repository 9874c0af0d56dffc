"""Time-sortable 53-bit ids (a snowflake): milliseconds since 2024, then a node number,
then a sequence within the millisecond.

53 bits keep an id exact in a JavaScript number and in a Redis sorted-set score (a
double), so feeds and lists order by id without asking the database. The node number
comes from Redis when a process starts, so processes never mint the same id.
"""

from __future__ import annotations

import secrets
import threading
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NODE_BITS = 6
SEQUENCE_BITS = 6
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


# Until the app assigns a node from Redis (see configure_node), a random one.
_generator = IdGenerator(secrets.randbelow(NODES))


def configure_node(node: int) -> None:
    global _generator
    _generator = IdGenerator(node)


def new_id() -> int:
    return _generator.next()


def id_time_ms(value: int) -> int:
    return (value >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS

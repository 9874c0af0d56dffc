"""Time-sortable 53-bit ids: milliseconds since 2024 in the high bits, randomness below.

53 bits keep an id exact in a JavaScript number and in a Redis sorted-set score
(a double), so feeds can order by id without asking the database.
"""

from __future__ import annotations

import secrets
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
RANDOM_BITS = 12


def new_id(now_ms: int | None = None) -> int:
    ms = (now_ms if now_ms is not None else time.time_ns() // 1_000_000) - EPOCH_MS
    return (ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)


def id_time_ms(value: int) -> int:
    return (value >> RANDOM_BITS) + EPOCH_MS

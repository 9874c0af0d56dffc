from __future__ import annotations

import random


def jittered(ttl_seconds: int, spread: float = 0.2) -> int:
    """A TTL spread by up to ±spread so that keys filled together do not expire together."""
    delta = int(ttl_seconds * spread)
    return max(1, ttl_seconds + random.randint(-delta, delta))  # noqa: S311 - not security


def jittered_below(ttl_seconds: int, spread: float = 0.2) -> int:
    """A TTL shortened by up to `spread`, never lengthened: for a TTL that is an "at most"."""
    delta = int(ttl_seconds * spread)
    return max(1, ttl_seconds - random.randint(0, delta))  # noqa: S311 - not security

"""Emptying a test's Redis the way an operator's FLUSHDB would, short of the trust marker.

A flushed Redis loses its trust marker (cache/trust.py), and the next new connection
then purges it again, at whatever moment in the test a connection is opened. Tests that
flush to make caches cold keep the marker, as a purge does; tests of the trust itself
flush with redis.flushdb()."""

from __future__ import annotations

from redis.asyncio import Redis


async def flush_caches(redis: Redis) -> None:
    """FLUSHDB, keeping the trust markers (one per master on a cluster, where FLUSHDB
    goes to every master)."""
    markers = {}
    async for key in redis.scan_iter(match="trust:*", count=1000):
        if not key.endswith(":recovery"):
            markers[key] = await redis.get(key)
    await redis.flushdb()
    for key, marker in markers.items():
        if marker is not None:
            await redis.set(key, marker)


async def all_keys(redis: Redis, pattern: str) -> list[str]:
    """KEYS on every master: a cluster's client sends KEYS to one node only."""
    return [key async for key in redis.scan_iter(match=pattern, count=1000)]

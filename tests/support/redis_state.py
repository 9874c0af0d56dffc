"""Emptying a test's Redis the way an operator's FLUSHDB would, short of the trust marker.

A flushed Redis loses its trust marker (cache/trust.py), and the next new connection
then purges it again, at whatever moment in the test a connection is opened. Tests that
flush to make caches cold keep the marker, as a purge does; tests of the trust itself
flush with redis.flushdb()."""

from __future__ import annotations

from redis.asyncio import Redis

from pictograph.cache import keys


async def flush_caches(redis: Redis) -> None:
    marker = await redis.get(keys.redis_trust())
    await redis.flushdb()
    if marker is not None:
        await redis.set(keys.redis_trust(), marker)

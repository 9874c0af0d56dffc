"""Cache fills that lose to concurrent changes.

A reader takes the entity's version before it reads the database and fills the cache
only if the version is unchanged; a writer bumps the version after its commit (and
drops the cached value). So a slow reader never caches something older than a change.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

VERSION_TTL = 3 * 24 * 3600

_SET_IF_VERSION = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


class VersionedWrites:
    def __init__(self, redis: Redis) -> None:
        self._set_if_version = redis.register_script(_SET_IF_VERSION)

    async def set_if_version(
        self, pipe: Pipeline, key: str, version_key: str, version: str, value: bytes, ttl: int
    ) -> None:
        await self._set_if_version(keys=[key, version_key], args=[version, value, ttl], client=pipe)


def bump_and_drop(pipe: Pipeline, key: str, version_key: str) -> None:
    pipe.incr(version_key)
    pipe.expire(version_key, VERSION_TTL)
    pipe.delete(key)

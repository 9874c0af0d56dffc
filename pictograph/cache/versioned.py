"""Cache fills that lose to concurrent changes.

A reader takes the entity's version before it reads the database and fills the cache
only if the version is unchanged; a writer bumps the version after its commit (and
drops the cached value). So a slow reader never caches something older than a change.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

VERSION_TTL = 3 * 24 * 3600

_SET_IF_VERSION = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


async def read_versioned(
    redis: Redis, value_keys: Sequence[str], version_keys: Sequence[str]
) -> list[tuple[str | None, str]]:
    """Each cached value (or None) and, for a miss, the version to fill it at.

    Only the misses' versions are read, in a second round trip after the values: a
    warm read sends half the commands, and a fill stays guarded, because its version
    is still read before the database is."""
    # A pipeline, not MGET: the keys live on different cluster slots.
    async with redis.pipeline(transaction=False) as pipe:
        for key in value_keys:
            pipe.get(key)
        values = await pipe.execute()
    missing = [i for i, value in enumerate(values) if value is None]
    versions = [""] * len(values)
    if missing:
        async with redis.pipeline(transaction=False) as pipe:
            for i in missing:
                pipe.get(version_keys[i])
            for i, version in zip(missing, await pipe.execute(), strict=True):
                versions[i] = version or "0"
    return list(zip(values, versions, strict=True))


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

"""Cache fills that lose to concurrent changes, and fences that a later read cannot miss.

A reader takes the entity's version before it reads the database and fills the cache
only if the version is unchanged; a writer moves the version after its commit (and drops
the cached value). So a slow reader never caches something older than a change.

Versions are random tokens, never counters: a flushed (or restarted) Redis loses them, and
a counter would start again at a value that a reader from before the flush may hold, so
its stale fill would be taken. A missing version is created by the first reader that
needs one, and no reader from before can hold it.

A change that takes something away (going private, deleting a post) fences the entity
before it commits: the cached value goes and the version becomes a pending one ("!..."),
under which nothing is cached. If Redis cannot take the fence, the change fails before
anything changed. If the version cannot be moved after the commit, the fence stays until
it expires (FENCE_TTL), and until then every read goes to the database, which holds the
truth: no cache can grant what the change revoked, whatever Redis did afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from pictograph.cache.connection import queue_reads
from pictograph.cache.scripts import script
from pictograph.checkpoints import checkpoint

VERSION_TTL = 3 * 24 * 3600
# Longer than a transaction runs between its fence and its commit.
FENCE_TTL = 300
PENDING = "!"

# KEYS: version. ARGV: a fresh version, ttl. The version, created if missing.
_VERSION = """
local version = redis.call('GET', KEYS[1])
if version then return version end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return ARGV[1]
"""

# KEYS: value, version. ARGV: version read before the database, value, ttl.
_SET_IF_VERSION = """
local version = redis.call('GET', KEYS[2])
if version ~= ARGV[1] or string.sub(version, 1, 1) == '!' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


def new_version() -> str:
    return secrets.token_hex(8)


class Versions:
    """The scripts, registered once per client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._version = script(redis, _VERSION)
        self._set_if_version = script(redis, _SET_IF_VERSION)

    async def read(
        self, value_keys: Sequence[str], version_keys: Sequence[str],
        before: Callable[[Pipeline], Callable[[list[Any]], None]] | None = None,
    ) -> list[tuple[str | None, str]]:
        """Each cached value (or None) and, for a miss, the version to fill it at.

        Only the misses' versions are read, in a second round trip after the values: a
        warm read sends half the commands, and a fill stays guarded, because its version
        is still read before the database is. `before` queues commands ahead of the
        reads, in the same round trip (a rendered response's epochs), and returns what
        takes their replies."""
        async with self.redis.pipeline(transaction=False) as pipe:
            after = before(pipe) if before is not None else None
            taken = queue_reads(pipe, value_keys)
            replies = await pipe.execute()
            if after is not None:
                after(replies)
            values = taken(replies)
        await checkpoint("versions.values_read")  # read, and the epochs before them
        missing = [i for i, value in enumerate(values) if value is None]
        versions = [""] * len(values)
        if missing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in missing:
                    await self._version(keys=[version_keys[i]],
                                        args=[new_version(), VERSION_TTL], client=pipe)
                for i, version in zip(missing, await pipe.execute(), strict=True):
                    versions[i] = version
        return list(zip(values, versions, strict=True))

    async def set_if_version(
        self, pipe: Pipeline, key: str, version_key: str, version: str, value: bytes, ttl: int
    ) -> None:
        await self._set_if_version(keys=[key, version_key], args=[version, value, ttl],
                                   client=pipe)


def bump_and_drop(pipe: Pipeline, key: str, version_key: str) -> None:
    """After a commit: fills that read the database before it are refused."""
    pipe.set(version_key, new_version(), ex=VERSION_TTL)
    pipe.delete(key)


def fence(pipe: Pipeline, key: str, version_key: str) -> None:
    """Before a commit that takes something away: nothing is cached until bump_and_drop
    (or FENCE_TTL) ends the fence."""
    pipe.set(version_key, PENDING + new_version(), ex=FENCE_TTL)
    pipe.delete(key)

"""Cached user profiles and the username → id map.

A profile fill carries the user's version read before the database read and is
dropped if the version moved meanwhile, so a slow reader never caches a profile
older than a change (an account going private, above all).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.records import UserRecord

PROFILE_TTL = 600
USERNAME_TTL = 24 * 3600
VERSION_TTL = 3 * 24 * 3600

_SET_IF_VERSION = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


class ProfileCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._set_if_version = redis.register_script(_SET_IF_VERSION)

    async def get(self, user_ids: Sequence[int]) -> list[tuple[UserRecord | None, str]]:
        """Each user's cached profile (or None) and the version to fill it at."""
        # A pipeline, not MGET: the keys live on different cluster slots.
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.get(keys.user_profile(user_id))
                pipe.get(keys.user_version(user_id))
            raw = await pipe.execute()
        return [
            (UserRecord.from_json(orjson.loads(raw[i])) if raw[i] else None, raw[i + 1] or "0")
            for i in range(0, len(raw), 2)
        ]

    async def fill(self, records: Sequence[tuple[UserRecord, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record, version in records:
                await self._set_if_version(
                    keys=[keys.user_profile(record.id), keys.user_version(record.id)],
                    args=[version, orjson.dumps(record.to_json()), jittered(PROFILE_TTL)],
                    client=pipe,
                )
                pipe.set(keys.username(record.username), record.id, ex=jittered(USERNAME_TTL))
            await pipe.execute()

    async def forget(self, user_ids: Sequence[int]) -> None:
        """Drops the profiles and moves the versions, so in-flight fills are dropped too."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.incr(keys.user_version(user_id))
                pipe.expire(keys.user_version(user_id), VERSION_TTL)
                pipe.delete(keys.user_profile(user_id))
            await pipe.execute()

    async def user_ids(self, usernames: Sequence[str]) -> list[int | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for username in usernames:
                pipe.get(keys.username(username))
            raw = await pipe.execute()
        return [int(item) if item else None for item in raw]

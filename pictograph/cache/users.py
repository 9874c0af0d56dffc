"""Cached user profiles and the username → id map. Profile fills are version-checked
(see versioned.py), so an account going private is never undone by a slow reader."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.responses import Recording
from pictograph.cache.versioned import Versions, bump_and_drop, fence
from pictograph.records import UserRecord

PROFILE_TTL = 600
USERNAME_TTL = 24 * 3600


class ProfileCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.versions = Versions(redis)

    async def get(
        self, user_ids: Sequence[int], recording: Recording | None = None
    ) -> list[tuple[UserRecord | None, str]]:
        """Each user's cached profile (or None) and the version to fill it at; a response
        being recorded reads each user's shown epoch first, and the follows epoch for
        the counts and lists it may show (cache/responses.py)."""
        before = None if recording is None else functools.partial(
            recording.depend, epoch_keys=[keys.user_shown(i) for i in user_ids],
            aside_keys=[keys.user_follows_shown(i) for i in user_ids])
        found = await self.versions.read([keys.user_profile(i) for i in user_ids],
                                         [keys.user_version(i) for i in user_ids], before)
        return [(UserRecord.from_json(orjson.loads(raw)) if raw else None, version)
                for raw, version in found]

    async def fill(self, records: Sequence[tuple[UserRecord, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record, version in records:
                await self.versions.set_if_version(
                    pipe, keys.user_profile(record.id), keys.user_version(record.id), version,
                    orjson.dumps(record.to_json()), jittered(PROFILE_TTL),
                )
                pipe.set(keys.username(record.username), record.id, ex=jittered(USERNAME_TTL))
            await pipe.execute()

    async def forget(self, user_ids: Sequence[int]) -> None:
        """Drops the profiles and moves the versions, so in-flight fills are dropped too."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                bump_and_drop(pipe, keys.user_profile(user_id), keys.user_version(user_id))
            await pipe.execute()

    async def fence(self, user_ids: Sequence[int]) -> None:
        """Before a change that hides something commits (going private; see versioned.py)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                fence(pipe, keys.user_profile(user_id), keys.user_version(user_id))
            await pipe.execute()

    async def user_ids(self, usernames: Sequence[str]) -> list[int | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for username in usernames:
                pipe.get(keys.username(username))
            raw = await pipe.execute()
        return [int(item) if item else None for item in raw]

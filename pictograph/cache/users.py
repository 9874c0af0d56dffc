"""Cached user profiles and the username → id map."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.records import UserRecord

PROFILE_TTL = 600
USERNAME_TTL = 24 * 3600


async def get_profiles(redis: Redis, user_ids: Sequence[int]) -> list[UserRecord | None]:
    # One pipeline, not MGET: the keys live on different cluster slots.
    async with redis.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.get(keys.user_profile(user_id))
        raw = await pipe.execute()
    return [UserRecord.from_json(orjson.loads(item)) if item else None for item in raw]


async def put_profiles(redis: Redis, records: Iterable[UserRecord]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for record in records:
            pipe.set(
                keys.user_profile(record.id),
                orjson.dumps(record.to_json()),
                ex=jittered(PROFILE_TTL),
            )
            pipe.set(keys.username(record.username), record.id, ex=jittered(USERNAME_TTL))
        await pipe.execute()


async def forget_profile(redis: Redis, user_id: int) -> None:
    await redis.delete(keys.user_profile(user_id))


async def get_user_ids(redis: Redis, usernames: Sequence[str]) -> list[int | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for username in usernames:
            pipe.get(keys.username(username))
        raw = await pipe.execute()
    return [int(item) if item else None for item in raw]

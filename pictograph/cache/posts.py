"""Cached post metadata (caption, status, variants). Version-checked fills, so a
deleted post or a finished one is never overwritten by a slow reader's older copy."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.versioned import VersionedWrites, bump_and_drop
from pictograph.records import PostRecord

POST_TTL = 3600


class PostCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._writes = VersionedWrites(redis)

    async def get(self, post_ids: Sequence[int]) -> list[tuple[PostRecord | None, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.get(keys.post(post_id))
                pipe.get(keys.post_version(post_id))
            raw = await pipe.execute()
        return [
            (PostRecord.from_json(orjson.loads(raw[i])) if raw[i] else None, raw[i + 1] or "0")
            for i in range(0, len(raw), 2)
        ]

    async def fill(self, records: Sequence[tuple[PostRecord, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record, version in records:
                await self._writes.set_if_version(
                    pipe, keys.post(record.id), keys.post_version(record.id), version,
                    orjson.dumps(record.to_json()), jittered(POST_TTL),
                )
            await pipe.execute()

    async def forget(self, post_ids: Sequence[int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                bump_and_drop(pipe, keys.post(post_id), keys.post_version(post_id))
            await pipe.execute()

"""Cached post metadata (caption, status, variants). Version-checked fills, so a
deleted post or a finished one is never overwritten by a slow reader's older copy."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.responses import Recording
from pictograph.cache.versioned import Versions, bump_and_drop, fence
from pictograph.records import PostRecord

POST_TTL = 3600


class PostCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.versions = Versions(redis)

    async def get(
        self, post_ids: Sequence[int], recording: Recording | None = None
    ) -> list[tuple[PostRecord | None, str]]:
        """Each cached post (or None) and the version to fill it at; a response being
        recorded reads each post's shown epoch first (cache/responses.py)."""
        before = None if recording is None else functools.partial(
            recording.depend, epoch_keys=[keys.post_shown(i) for i in post_ids])
        found = await self.versions.read(
            [keys.post(i) for i in post_ids], [keys.post_version(i) for i in post_ids], before
        )
        return [(PostRecord.from_json(orjson.loads(raw)) if raw else None, version)
                for raw, version in found]

    async def fill(self, records: Sequence[tuple[PostRecord, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record, version in records:
                await self.versions.set_if_version(
                    pipe, keys.post(record.id), keys.post_version(record.id), version,
                    orjson.dumps(record.to_json()), jittered(POST_TTL),
                )
            await pipe.execute()

    async def forget(self, post_ids: Sequence[int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                bump_and_drop(pipe, keys.post(post_id), keys.post_version(post_id))
            await pipe.execute()

    async def fence(self, post_ids: Sequence[int]) -> None:
        """Before a deletion commits (see versioned.py)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                fence(pipe, keys.post(post_id), keys.post_version(post_id))
            await pipe.execute()

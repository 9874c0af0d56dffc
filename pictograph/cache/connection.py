from __future__ import annotations

import fakeredis
from fakeredis.aioredis import FakeRedis
from redis.asyncio import Redis

from pictograph.settings import Settings


def open_redis(settings: Settings) -> Redis:
    """A client for the configured Redis, or an in-process one for the embedded default."""
    if settings.redis_url is None:
        return FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )

from __future__ import annotations

import fakeredis
from fakeredis.aioredis import FakeRedis
from redis.asyncio import BlockingConnectionPool, Redis

from pictograph.settings import Settings


def open_redis(settings: Settings) -> Redis:
    """A client for the configured Redis, or an in-process one for the embedded default.

    The pool blocks when all its connections are busy: a burst (a thousand live
    subscribers judging one post at once) waits a moment for a connection instead of
    failing with "Too many connections", which is what redis-py's default pool does.
    """
    pool_options = {"max_connections": settings.redis_max_connections,
                    "timeout": settings.redis_pool_timeout}
    if settings.redis_url is None:
        return FakeRedis(server=fakeredis.FakeServer(), decode_responses=True,
                         connection_pool_class=BlockingConnectionPool, **pool_options)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
        **pool_options,
    )
    return Redis.from_pool(pool)

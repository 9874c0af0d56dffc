from __future__ import annotations

import fakeredis
from fakeredis.aioredis import FakeRedis
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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


def subscriber_client(redis: Redis) -> Redis:
    """A client on the same server for pub/sub, whose connections never retry silently.

    A retried read reconnects and re-subscribes behind the caller's back, and whatever
    was published in between is lost without anyone knowing. With no retries every
    failure reaches the live hub, which re-subscribes itself and tells its listeners
    that messages may have been missed."""
    pool = redis.connection_pool
    options = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    options.pop("retry_on_timeout", None)
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class,
                                                max_connections=4, **options))

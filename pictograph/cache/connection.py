from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import fakeredis
from fakeredis.aioredis import FakeRedis
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pictograph.settings import Settings


class IdleFirstPool(BlockingConnectionPool):
    """redis-py's blocking pool, handing out an idle connection (and taking one back)
    without its Condition and timeout when nobody waits.

    Those cost about 15 us of CPU per command here (a sixth of a cached read's Redis
    round trip), and they only matter when the pool is empty: then a caller waits as
    before, bounded by the pool's timeout, and a connection given back while anyone
    waits goes through the Condition, which wakes them. (redis-py's own wait-time metric,
    off unless its observability is configured, is not recorded on the quick way.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self._available_connections or self._in_maintenance:
            self._waiting += 1
            try:
                return await super().get_connection()
            finally:
                self._waiting -= 1
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            await self.ensure_connection(connection)  # connected, and nothing left unread
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        if self._waiting or self._in_maintenance:
            await super().release(connection)  # under the Condition, which wakes them
            return
        await ConnectionPool.release(self, connection)
        if self._waiting:  # someone began to wait while the release paused (on its lock)
            async with self._condition:
                self._condition.notify()


def open_redis(settings: Settings) -> Redis:
    """A client for the configured Redis, or an in-process one for the embedded default.

    The pool blocks when all its connections are busy: a burst (a thousand live
    subscribers judging one post at once) waits a moment for a connection instead of
    failing with "Too many connections", which is what redis-py's default pool does.
    """
    pool_options = {"max_connections": settings.redis_max_connections,
                    "timeout": settings.redis_pool_timeout}
    if settings.redis_url is None:
        fake = FakeRedis(server=fakeredis.FakeServer(), decode_responses=True,
                         connection_pool_class=IdleFirstPool, **pool_options)
        # FakeRedis builds the pool without passing the timeout on (it waited 20 s).
        fake.connection_pool.timeout = settings.redis_pool_timeout
        return fake
    pool = IdleFirstPool.from_url(
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


def queue_reads(
    pipe: Pipeline | ClusterPipeline, keys: Sequence[str]
) -> Callable[[list[Any]], list[Any]]:
    """Queues a read of each key's string value on `pipe`; the function returned takes
    the values, in the keys' order, out of the pipeline's replies.

    One MGET, not a GET per key: redis-py spends more CPU on each command it packs and
    reads back than Redis does on it, and a page reads about forty keys (an uncached
    feed cost 8 % less CPU this way, bench/request_cost.py). A cluster refuses an MGET
    whose keys are on different slots, so there each key is read on its own, and the
    cluster pipeline sends each to its node."""
    start = len(pipe)
    if not keys:
        return lambda replies: []
    if isinstance(pipe, ClusterPipeline):
        for key in keys:
            pipe.get(key)
        return lambda replies: replies[start:start + len(keys)]
    pipe.mget(keys)
    return lambda replies: replies[start]

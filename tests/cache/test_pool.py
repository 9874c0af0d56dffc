"""The Redis pool (cache/connection.IdleFirstPool): an idle connection is handed out
without waiting, a full pool makes callers wait their turn (bounded by its timeout), and
a connection given back while someone waits wakes them."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.cache.connection import IdleFirstPool, open_redis
from pictograph.resources import Resources


def one_connection(resources: Resources, timeout: float):
    if resources.settings.redis_cluster:
        pytest.skip("a cluster's client keeps a pool per node, which does not block")
    redis = open_redis(resources.settings.model_copy(update={
        "redis_max_connections": 1, "redis_pool_timeout": timeout}))
    assert isinstance(redis.connection_pool, IdleFirstPool)
    return redis


async def test_callers_of_a_full_pool_wait_their_turn_and_all_get_answers(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = one_connection(resources, timeout=5)
    try:
        await redis.set("pool:k", "v")  # the one connection, now idle
        waited = 0
        original = BlockingConnectionPool.get_connection

        async def counted(self, *args, **kwargs):
            nonlocal waited
            waited += 1
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(BlockingConnectionPool, "get_connection", counted)
        assert await redis.get("pool:k") == "v"
        assert waited == 0  # the idle connection went without the Condition
        # Twenty at once on one connection: all but the first wait, and each release
        # wakes the next (a release that skipped the Condition would leave them asleep
        # until the pool's timeout, and they would fail).
        answers = await asyncio.wait_for(
            asyncio.gather(*(redis.get("pool:k") for _ in range(20))), timeout=4)
        assert answers == ["v"] * 20
        assert waited >= 19
    finally:
        await redis.aclose()


async def test_a_caller_that_waits_past_the_pools_timeout_fails_clearly(
    resources: Resources,
) -> None:
    redis = one_connection(resources, timeout=0.2)
    try:
        held = await redis.connection_pool.get_connection()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await redis.get("pool:k")
        await redis.connection_pool.release(held)
        await redis.set("pool:k", "again")  # the connection given back serves again
        assert await redis.get("pool:k") == "again"
    finally:
        await redis.aclose()


async def test_a_release_that_pauses_still_wakes_whoever_began_to_wait_meanwhile(
    resources: Resources,
) -> None:
    """redis-py holds the pool's own lock across awaits at times (reconnects,
    re-authentication): a release waiting for that lock must still wake a caller that
    found the pool full meanwhile, not leave it asleep until the pool's timeout."""
    redis = one_connection(resources, timeout=2)
    pool = redis.connection_pool
    try:
        held = await pool.get_connection()

        async def hold_the_pools_lock() -> None:
            async with pool._lock:
                await asyncio.sleep(0.05)

        holder = asyncio.create_task(hold_the_pools_lock())
        await asyncio.sleep(0)
        releasing = asyncio.create_task(pool.release(held))  # nobody waits yet: quick way
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        again = await pool.get_connection()  # the pool is full: this one waits
        assert asyncio.get_running_loop().time() - started < 1
        await pool.release(again)
        await holder
        await releasing
    finally:
        await redis.aclose()

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from pictograph.cache import keys
from pictograph.db import using_database
from pictograph.models import AuthToken
from pictograph.resources import Resources
from pictograph.workers.runner import run_workers
from pictograph.workers.token_sweeper import sweep_once
from tests.support.graphql import gql, sign_up


async def test_sweeper_removes_expired_tokens_and_keeps_live_ones(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    live = await sign_up(client, "live")
    await sign_up(client, "stale")
    await AuthToken.filter(user__username="stale").update(
        expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    with using_database(resources.database):
        assert await sweep_once(resources) == 1
    assert await AuthToken.all().count() == 1
    assert (await gql(client, "{ viewer { username } }", token=live))["data"]["viewer"]


async def test_only_one_process_sweeps_at_a_time(resources: Resources) -> None:
    lock = resources.redis.lock(keys.worker_lock("token-sweeper"), timeout=30)
    assert await lock.acquire(blocking=False)
    try:
        with using_database(resources.database):
            assert await sweep_once(resources) is None
    finally:
        await lock.release()


async def test_workers_start_and_stop_with_the_runner(resources: Resources) -> None:
    swept = resources.metrics.worker_jobs.labels("token-sweeper", "ok")
    async with run_workers(resources) as stop:
        # A round is not a job: one cut by the stop would not count, so wait for it.
        for _ in range(1000):  # 10 s at most, on the busiest machine
            if swept._value.get() >= 1:
                break
            await asyncio.sleep(0.01)
        assert not stop.is_set()
    assert swept._value.get() >= 1

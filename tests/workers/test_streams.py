"""Stream consumers: a long job keeps its claim while it runs, a dead consumer's job is
taken over after the claim idle time, outages do not use up a job's tries, crashes do."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.events import ProcessPost
from pictograph.resources import Resources
from pictograph.workers.streams import StreamConsumer

STREAM = "stream:{test-jobs}"
GROUP = "testers"


def consumer(resources: Resources, handler: Any, **options: Any) -> StreamConsumer:
    return StreamConsumer(resources.redis, STREAM, GROUP, handler, resources.metrics,
                          block_ms=1, **options)


async def add_job(resources: Resources) -> None:
    job = ProcessPost(post_id=1)
    await resources.redis.xadd(STREAM, {"event_id": "1", "kind": job.KIND,
                                        "data": orjson.dumps(job.payload())})


async def test_a_long_job_keeps_its_claim_while_it_runs(resources: Resources) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def long_job(_: dict[str, Any]) -> None:
        started.set()
        await release.wait()

    worker = consumer(resources, long_job, claim_idle_ms=1000)
    rival_ran: list[dict[str, Any]] = []

    async def rival_job(event: dict[str, Any]) -> None:
        rival_ran.append(event)

    rival = consumer(resources, rival_job, claim_idle_ms=1000)
    await worker.ensure_group()
    await add_job(resources)
    working = asyncio.create_task(worker.step())
    await started.wait()
    await asyncio.sleep(2.5)  # over twice the idle time: a job without heartbeats is free
    assert await rival.step() == 0
    release.set()
    assert await working == 1
    assert rival_ran == []
    assert (await resources.redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_outages_do_not_use_up_a_jobs_tries(resources: Resources) -> None:
    attempts: list[int] = []

    async def flaky(_: dict[str, Any]) -> None:
        attempts.append(1)
        if len(attempts) <= 10:
            raise RedisConnectionError("redis went away")

    poisoned: list[dict[str, Any]] = []

    async def give_up(event: dict[str, Any]) -> None:
        poisoned.append(event)

    worker = consumer(resources, flaky, claim_idle_ms=0, max_deliveries=3, on_poison=give_up)
    await worker.ensure_group()
    await add_job(resources)
    for _ in range(11):
        assert await worker.step() == 1
    assert len(attempts) == 11 and poisoned == []
    assert (await resources.redis.xpending(STREAM, GROUP))["pending"] == 0


@pytest.mark.parametrize("ending", ["failure", "crash"])
async def test_failures_and_crashes_use_up_a_jobs_tries(resources: Resources,
                                                        ending: str) -> None:
    attempts: list[int] = []

    async def broken(_: dict[str, Any]) -> None:
        attempts.append(1)
        raise RuntimeError("a bug")

    poisoned: list[dict[str, Any]] = []

    async def give_up(event: dict[str, Any]) -> None:
        poisoned.append(event)

    worker = consumer(resources, broken, claim_idle_ms=0, max_deliveries=3, on_poison=give_up)
    await worker.ensure_group()
    await add_job(resources)
    if ending == "crash":
        # Three deliveries to consumers that died holding them (nothing recorded).
        await resources.redis.xreadgroup(GROUP, "dead-1", {STREAM: ">"})
        for name in ("dead-2", "dead-3"):
            await resources.redis.xautoclaim(STREAM, GROUP, name, 0, "0-0")
        await worker.step()
        assert attempts == []  # given up without running it a fourth time
    else:
        for _ in range(3):
            await worker.step()
        assert len(attempts) == 3
    assert len(poisoned) == 1
    assert (await resources.redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_message_that_is_not_an_event_is_dropped_not_retried(
    resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[Any] = []

    async def handler(event: Any) -> None:
        handled.append(event)

    worker = consumer(resources, handler, claim_idle_ms=0)
    await worker.ensure_group()
    await resources.redis.xadd(STREAM, {"event_id": "1", "kind": "job", "data": "{}"})
    assert await worker.step() == 1
    assert handled == [] and "is not an event" in caplog.text
    assert (await resources.redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_consumer_whose_stream_is_deleted_between_reads_makes_it_again(
        resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream goes (a flush, a purge) after the claim and before the read: the
    consumer makes its group again and goes on, on either backend (fakeredis answers
    that read with "requires the key to exist" where Redis says NOGROUP)."""
    handled: list[Any] = []

    async def job(event: Any) -> None:
        handled.append(event)

    worker = consumer(resources, job)
    await worker.ensure_group()
    claim = resources.redis.xautoclaim

    flushed = asyncio.Event()

    async def claim_then_flush(*args: Any, **kwargs: Any) -> Any:
        found = await claim(*args, **kwargs)
        await resources.redis.delete(STREAM)
        monkeypatch.setattr(resources.redis, "xautoclaim", claim)  # once
        flushed.set()
        return found

    monkeypatch.setattr(resources.redis, "xautoclaim", claim_then_flush)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(flushed.wait(), 10)
    for _ in range(500):
        if await resources.redis.exists(STREAM):
            break  # made again
        await asyncio.sleep(0.01)
    await add_job(resources)
    for _ in range(500):
        if handled or running.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await running  # raises if the consumer died
    assert len(handled) == 1

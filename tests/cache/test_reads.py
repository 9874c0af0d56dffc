"""Many keys read in one command (cache/connection.queue_reads), amid other commands of
the same pipeline, in the keys' order, a missing key as None."""

from __future__ import annotations

import pytest

from pictograph.cache.connection import queue_reads
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER
from tests.support.redis_counter import count_redis


async def test_values_come_back_in_the_keys_order_in_one_command(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = resources.redis
    await redis.set("reads:{a}", "1")
    await redis.set("reads:{c}", "3")
    with count_redis(monkeypatch) as counted:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set("reads:{before}", "x")
            taken = queue_reads(pipe, ["reads:{c}", "reads:{b}", "reads:{a}", "reads:{c}"])
            pipe.get("reads:{before}")
            replies = await pipe.execute()
    assert taken(replies) == ["3", None, "1", "3"]
    assert replies[-1] == "x"  # the commands around them keep their replies
    # On a cluster, one MGET per slot ({a}, {b} and {c} are three), side by side.
    assert (counted.commands, counted.round_trips) == (5 if REDIS_CLUSTER else 3, 1)


async def test_no_keys_queue_nothing(resources: Resources) -> None:
    async with resources.redis.pipeline(transaction=False) as pipe:
        taken = queue_reads(pipe, [])
        assert len(pipe) == 0
        pipe.set("reads:{x}", "1")  # not PING: a cluster's pipeline refuses it
        assert taken(await pipe.execute()) == []

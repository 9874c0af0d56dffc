"""Counting Redis commands and round trips sent by redis-py (real or fake server, or a
cluster, where a command is one per slot a pipeline reaches), and script calls packed by
hand (cache/raw.py, cache/cluster_reads.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio.client import Pipeline, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from pictograph.cache import cluster_reads, raw


@dataclass
class RedisCount:
    commands: int = 0
    round_trips: int = 0


@contextmanager
def count_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisCount]:
    count = RedisCount()
    original_execute_command = Redis.execute_command
    original_pipeline_execute = Pipeline.execute

    async def execute_command(self, *args, **options):
        if not isinstance(self, Pipeline):
            count.commands += 1
            count.round_trips += 1
        return await original_execute_command(self, *args, **options)

    async def pipeline_execute(self, raise_on_error: bool = True):
        if self.command_stack:
            count.commands += len(self.command_stack)
            count.round_trips += 1
        return await original_pipeline_execute(self, raise_on_error)

    original_streaming = raw.streaming

    @asynccontextmanager
    async def streaming(*args, **options):  # packed by hand: its writes, one read
        async with original_streaming(*args, **options) as send:
            async def counted_send(calls):
                count.commands += len(calls)
                return await send(calls)

            yield counted_send
        count.round_trips += 1

    original_call = raw.call
    original_by_node = cluster_reads.read_by_node

    async def by_node(cluster, commands):  # packed by hand, the nodes side by side
        count.commands += len(commands)
        count.round_trips += 1
        return await original_by_node(cluster, commands)

    async def call(*args, **options):  # one command packed by hand
        count.commands += 1
        count.round_trips += 1
        return await original_call(*args, **options)

    # A cluster's client and pipeline: a pipeline sends to its nodes side by side, one
    # round trip however many nodes it reaches.
    original_cluster_command = RedisCluster.execute_command
    original_cluster_execute = ClusterPipeline.execute

    async def cluster_command(self, *args, **options):
        count.commands += 1
        count.round_trips += 1
        return await original_cluster_command(self, *args, **options)

    async def cluster_execute(self, raise_on_error: bool = True,
                              allow_redirections: bool = True):
        if len(self):
            count.commands += len(self)
            count.round_trips += 1
        return await original_cluster_execute(self, raise_on_error, allow_redirections)

    with monkeypatch.context() as patch:
        patch.setattr(Redis, "execute_command", execute_command)
        patch.setattr(Pipeline, "execute", pipeline_execute)
        patch.setattr(raw, "streaming", streaming)
        patch.setattr(raw, "call", call)
        patch.setattr(cluster_reads, "read_by_node", by_node)
        patch.setattr(RedisCluster, "execute_command", cluster_command)
        patch.setattr(ClusterPipeline, "execute", cluster_execute)
        yield count

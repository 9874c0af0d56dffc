"""Counting Redis commands and round trips sent by redis-py (real or fake server), and
script calls packed by hand (cache/raw.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio.client import Pipeline, Redis

from pictograph.cache import raw


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

    with monkeypatch.context() as patch:
        patch.setattr(Redis, "execute_command", execute_command)
        patch.setattr(Pipeline, "execute", pipeline_execute)
        patch.setattr(raw, "streaming", streaming)
        yield count

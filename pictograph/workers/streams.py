"""Consuming a Redis Stream with a consumer group: at-least-once, crash-safe.

A message is acknowledged only after its handler finished, so a consumer that dies
mid-way leaves it pending; another consumer claims it (XAUTOCLAIM) once it has been
idle for `claim_idle_ms`. While a handler works, its consumer claims the message again
every third of that time (a heartbeat: XCLAIM JUSTID resets the idle time), so a long
job is never taken over while it runs, and the idle time can be short: a consumer that
dies costs its messages a few seconds, not the length of the longest job.
Handlers must therefore be idempotent.

Giving up. A message whose handler fails `max_deliveries` times is handed to
`on_poison` and acknowledged, so one bad message cannot block a stream. Failures that
are outages (a service away, see outages.py) do not count: a job that meets a long
database outage waits for it, instead of failing for it. Deliveries that ended neither
in success nor in a counted failure are crashes of the consumer's process (memory, a
segfault in a decoder); those count too, checked before handling, or such a message
would come back for ever.

A group that has to be created (a first start, or a Redis that was flushed or restarted
empty, losing the stream with its unread and pending messages) calls `on_group_created`,
so a consumer whose jobs can be recovered from the database queues them again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from pictograph.cache import keys
from pictograph.events import Event, decode
from pictograph.metrics import Metrics
from pictograph.outages import unavailable_service
from pictograph.workers.jobs import job

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
IDLE_PAUSE = 0.05
MIN_HEARTBEAT = 0.1  # seconds: tests claim with no idle time at all


async def run_together(runs: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Runs consumers as one worker: if one fails, the others are cancelled too, so the
    supervisor restarts the whole set instead of leaving orphans running."""
    async with asyncio.TaskGroup() as group:
        for run in runs:
            group.create_task(run)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# What Redis (and fakeredis) answer a consumer whose stream or group is gone.
STREAM_GONE = ("NOGROUP", "UNBLOCKED", "requires the key to exist")


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        handler: Handler,
        metrics: Metrics,
        *,
        on_poison: Handler | None = None,
        on_group_created: Callable[[], Awaitable[None]] | None = None,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        batch: int = 10,
        block_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.name = consumer_name()
        self.handler = handler
        self.metrics = metrics
        self.on_poison = on_poison
        self.on_group_created = on_group_created
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.block_ms = block_ms

    async def ensure_group(self) -> bool:
        """Creates the group if it is missing; True when it was (see on_group_created)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            return False
        if self.on_group_created is not None:
            try:
                await self.on_group_created()
            except BaseException:
                # Undone, so the next attempt finds the group missing and recovers again
                # instead of finding it there and never recovering.
                with contextlib.suppress(RedisError):
                    await self.redis.xgroup_destroy(self.stream, self.group)
                raise
        return True

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        group_checked = False
        while not stop.is_set():
            try:
                if not group_checked:
                    # Here, not before the loop: Redis may be away (or not yet trusted
                    # again) just when the group has to be made, and that is an outage
                    # to wait out like any other.
                    await self.ensure_group()
                    group_checked = True
                started = loop.time()
                if not await self.step() and loop.time() - started < IDLE_PAUSE:
                    # The server answered an empty read at once instead of blocking (the
                    # in-process fakeredis does): pause rather than spin the event loop.
                    await asyncio.sleep(IDLE_PAUSE)
            except ResponseError as error:  # before RedisError: it is one
                # NOGROUP: Redis was flushed or restarted empty. UNBLOCKED: the stream was
                # deleted (flushed) while this consumer waited on it. The in-process
                # fakeredis answers a read of a deleted stream with the last.
                if not any(sign in str(error) for sign in STREAM_GONE):
                    raise
                group_checked = False
            except RedisError as error:
                log.warning("%s: redis unavailable (%s); retrying", self.group,
                            type(error).__name__)
                await asyncio.sleep(1)

    async def step(self) -> int:
        """Handles what others abandoned, then new messages. Returns how many."""
        _, claimed, _ = await self.redis.xautoclaim(
            self.stream, self.group, self.name, self.claim_idle_ms, start_id="0-0",
            count=self.batch,
        )
        for message_id, fields in claimed:
            with job():  # up to its acknowledgement: SIGTERM lets it finish
                failures, crashes = await self._attempts(message_id)
                if failures + crashes >= self.max_deliveries:
                    log.error("%s: message %s given up after %d failures and %d crashes",
                              self.group, message_id, failures, crashes)
                    event = self._decoded(message_id, fields)
                    if event is None:
                        await self._done(message_id)
                    else:
                        await self._give_up(message_id, event)
                else:
                    await self._handle(message_id, fields)
        if claimed:
            return len(claimed)
        response = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch, block=self.block_ms,
        )
        messages = [m for _, entries in response or [] for m in entries]
        for message_id, fields in messages:
            with job():
                await self._handle(message_id, fields)
        return len(messages)

    async def _handle(self, message_id: str, fields: dict[str, str]) -> None:
        event = self._decoded(message_id, fields)
        if event is None:
            self.metrics.worker_jobs.labels(self.group, "poisoned").inc()
            await self._done(message_id)
            return
        heartbeat = asyncio.create_task(self._keep_claimed(message_id))
        try:
            await self.handler(event)
        except Exception as error:
            await self._failed(message_id, event, error)
            return  # stays pending; claimed again after claim_idle_ms
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        self.metrics.worker_jobs.labels(self.group, "ok").inc()
        await self._done(message_id)

    def _decoded(self, message_id: str, fields: dict[str, str]) -> Event | None:
        """The message's event, or None (logged) for one that is not an event of ours:
        retrying cannot help it, so it is acknowledged and dropped."""
        try:
            return decode(fields)
        except (KeyError, TypeError, ValueError):
            log.error("%s: message %s is not an event; dropped: %r", self.group, message_id,
                      fields)
            return None

    async def _keep_claimed(self, message_id: str) -> None:
        while True:
            await asyncio.sleep(max(self.claim_idle_ms / 3000, MIN_HEARTBEAT))
            with contextlib.suppress(RedisError):
                await self.redis.xclaim(self.stream, self.group, self.name, 0, [message_id],
                                        justid=True)

    async def _failed(self, message_id: str, event: Event, error: Exception) -> None:
        service = unavailable_service(error)
        kind = "outage" if service is not None else "failure"
        counted = await self.redis.hincrby(self._attempts_key, f"{message_id}:{kind}", 1)
        if service is not None:  # an outage: a line per retry, not a traceback
            log.warning("%s: message %s waits, %s unavailable (%d times)", self.group,
                        message_id, service, counted)
            self.metrics.worker_jobs.labels(self.group, "outage").inc()
            return
        log.exception("%s: message %s failed (%d of %d)", self.group, message_id, counted,
                      self.max_deliveries)
        self.metrics.worker_jobs.labels(self.group, "failed").inc()
        if counted >= self.max_deliveries:
            await self._give_up(message_id, event)

    async def _give_up(self, message_id: str, event: Event) -> None:
        if self.on_poison is not None:
            await self.on_poison(event)
        self.metrics.worker_jobs.labels(self.group, "poisoned").inc()
        await self._done(message_id)

    async def _done(self, message_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, self.group, message_id)
            pipe.hdel(self._attempts_key, f"{message_id}:outage", f"{message_id}:failure")
            await pipe.execute()

    async def _attempts(self, message_id: str) -> tuple[int, int]:
        """(counted failures, crashes): deliveries before this one that ended in neither
        a success nor a counted failure or outage."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xpending_range(self.stream, self.group, min=message_id, max=message_id,
                                count=1)
            pipe.hmget(self._attempts_key, f"{message_id}:failure", f"{message_id}:outage")
            pending, (failures, outages) = await pipe.execute()
        delivered = int(pending[0]["times_delivered"]) if pending else 1
        failures, outages = int(failures or 0), int(outages or 0)
        return failures, max(0, delivered - 1 - failures - outages)

    @property
    def _attempts_key(self) -> str:
        return keys.stream_attempts(self.stream, self.group)

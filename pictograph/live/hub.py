"""One Redis pub/sub connection per process, shared by every open subscription.

Subscriptions register queues for channels; the hub subscribes a channel while anyone
listens to it. If Redis goes away the hub reconnects and subscribes everything again,
so sockets stay open through a Redis restart (messages sent meanwhile are missed)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class Listener:
    """One subscription's inbox and the channels it listens to."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.channels: set[str] = set()

    async def listen_to(self, channels: Iterable[str]) -> None:
        new = set(channels) - self.channels
        self.channels |= new
        await self.hub._add(self, new)

    async def stop_listening_to(self, channels: Iterable[str]) -> None:
        gone = set(channels) & self.channels
        self.channels -= gone
        await self.hub._remove(self, gone)

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class LiveHub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="live-hub")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        try:
            await self._pubsub.aclose()
        except RedisError:
            pass

    @asynccontextmanager
    async def listener(self, channels: Iterable[str]) -> AsyncIterator[Listener]:
        listener = Listener(self)
        await listener.listen_to(channels)
        try:
            yield listener
        finally:
            await listener.stop_listening_to(list(listener.channels))

    @property
    def subscriptions(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self.redis.publish(channel, orjson.dumps(message))

    async def _add(self, listener: Listener, channels: set[str]) -> None:
        async with self._lock:
            fresh = [c for c in channels if not self._listeners[c]]
            for channel in channels:
                self._listeners[channel].add(listener)
            if fresh:
                try:
                    await self._pubsub.subscribe(*fresh)
                except RedisError:
                    log.warning("live hub: subscribe failed; the reader re-subscribes")

    async def _remove(self, listener: Listener, channels: set[str]) -> None:
        async with self._lock:
            empty = []
            for channel in channels:
                self._listeners[channel].discard(listener)
                if not self._listeners[channel]:
                    del self._listeners[channel]
                    empty.append(channel)
            if empty:
                try:
                    await self._pubsub.unsubscribe(*empty)
                except RedisError:
                    pass

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                if not self._pubsub.subscribed:
                    if self._listeners:  # a subscribe failed while Redis was away
                        await self._resubscribe()
                    await asyncio.sleep(0.05)
                    continue
                started = asyncio.get_running_loop().time()
                message = await self._pubsub.get_message(timeout=1.0)
                self.connected.set()
                backoff = 0.1
                if message is not None and message["type"] == "message":
                    self._dispatch(message["channel"], message["data"])
                elif asyncio.get_running_loop().time() - started < 0.01:
                    # An empty answer at once (fakeredis does not wait): do not spin.
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self.connected.clear()
                log.warning("live hub lost redis (%s); reconnecting", type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                await self._resubscribe()

    async def _resubscribe(self) -> None:
        async with self._lock:
            try:
                await self._pubsub.aclose()
            except RedisError:
                pass
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            if self._listeners:
                try:
                    await self._pubsub.subscribe(*self._listeners)
                except RedisError:
                    pass  # the reader's next round notices and tries again

    def _dispatch(self, channel: str, data: str | bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        for listener in list(self._listeners.get(channel, ())):
            try:
                listener.queue.put_nowait(message)
            except asyncio.QueueFull:
                # A stalled client must not hold the hub up; it misses this one.
                log.warning("live: a subscriber's queue is full; dropping a message")

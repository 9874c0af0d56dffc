"""Which users have an open socket: `keys.live_connections(user)`, a sorted set of the
user's sockets (member: the socket's id, score: when its lease lapses), one key per user.

It is two things at once. Its members are the user's places among MAX_SOCKETS_PER_USER
(checked when a socket signs in). And the key's existence is the presence marker the
fan-out reads before it publishes a live message to a follower (cache/feeds.py): no key,
no message. So the key must exist whenever the user has a socket open on any process,
even after Redis lost it (a purge by the trust check, a restart, an eviction): every
process renews all its open sockets in one pipeline every RENEW_EVERY, with a ZADD that
adds the member back if it is gone (not ZADD XX, which would leave a lost key lost), and
at once after the live hub got its connection back (a restart loses the key).

A renewal that crosses its socket's close (the pipeline was sent just as the socket gave
its place back) puts a closed socket back; it lapses with its lease, LEASE_SECONDS later
at most, and the key with it once no open socket renews it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis

from pictograph.cache import keys

log = logging.getLogger(__name__)

# A socket's place (and the user's presence) lapses this long after its last renewal:
# how long a process that died leaves its users marked present.
LEASE_SECONDS = 30
# So two renewals in a row may fail (Redis briefly away) before a place lapses; also the
# longest a lost key stays lost while its user has a socket open.
RENEW_EVERY = LEASE_SECONDS / 3


class Presence:
    """This process's open sockets and their places in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._open: dict[str, int] = {}  # socket id -> user id
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def open_sockets(self) -> int:
        return len(self._open)

    async def take(self, user_id: int, connection_id: str, most: int) -> bool:
        """A place among the user's sockets, or False if they hold `most` already."""
        key = keys.live_connections(user_id)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {connection_id: now + LEASE_SECONDS})
            pipe.zcard(key)
            pipe.expire(key, LEASE_SECONDS)
            _, _, count, _ = await pipe.execute()
        if count > most:
            await self.redis.zrem(key, connection_id)
            return False
        self._open[connection_id] = user_id
        return True

    async def release(self, user_id: int, connection_id: str) -> None:
        """Gives the place back; no renewal sent from now on includes it."""
        self._open.pop(connection_id, None)
        await self.redis.zrem(keys.live_connections(user_id), connection_id)

    async def renew(self) -> int:
        """Every open socket's place, added back where Redis lost it, in one pipeline;
        returns how many."""
        sockets = list(self._open.items())
        if not sockets:
            return 0
        lapses = time.time() + LEASE_SECONDS
        async with self.redis.pipeline(transaction=False) as pipe:
            for connection_id, user_id in sockets:
                key = keys.live_connections(user_id)
                pipe.zadd(key, {connection_id: lapses})
                pipe.expire(key, LEASE_SECONDS)
            await pipe.execute()
        return len(sockets)

    def renew_soon(self) -> None:
        """Renew now rather than at the next interval (Redis may have lost the keys)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._renewing(), name="live-presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _renewing(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RENEW_EVERY)
            self._wake.clear()
            try:
                await self.renew()
            except Exception as error:  # Redis away: the next round tries again
                log.warning("live presence not renewed (%s)", type(error).__name__)

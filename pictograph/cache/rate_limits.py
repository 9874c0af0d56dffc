"""Rate limits: counters in Redis, shared by every process, kept by the `limits` library.

Sliding-window counters: two small keys per counter whatever the limit, and no burst of
twice the limit across a window boundary as fixed windows allow. Every call counts
before the work it guards, so parallel requests (or aliases in one document) cannot all
pass a check made before any of them was counted.

logIn follows OWASP's advice against both guessing and lock-outs: a tight count per
(username, address), which the right password starts again, so it bounds one address's
wrong guesses; a loose count per username that addresses which have logged in to the
account lately ("known", OWASP's device cookie keyed by address, since our clients are
API clients) skip, so guesses from many addresses stay slow without locking the owner
out of their usual one; and a loose count per address, whatever the username.

When Redis cannot count: logIn and signUp fail closed (a Redis outage must not switch
off brute-force protection), the rest fail open (they protect capacity, not secrets, and
the request may still succeed), each saying so in the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from pictograph.cache import keys
from pictograph.errors import RateLimited, ServiceUnavailable
from pictograph.settings import Settings

log = logging.getLogger(__name__)

# While Redis is down, each limit says so in the log at most this often (seconds).
WARN_EVERY = 60.0


# Each limit by the name of its setting (after "rate_limit_"): what the client is told
# it sent too many of, and whether it fails closed.
LIMITS = {
    "log_in_per_ip": ("log-in attempts from this address", True),
    "log_in_per_username_and_ip": ("log-in attempts for this username from this address", True),
    "log_in_per_username": ("log-in attempts for this username from new addresses", True),
    "sign_up_per_ip": ("sign-ups from this address", True),
    "mutations_per_user": ("changes", False),
    "uploads_per_user": ("uploads", False),
    "media_per_viewer": ("photo requests", False),
}


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    items: tuple[RateLimitItem, ...]
    what: str
    fail_closed: bool


def _storage(redis: Redis) -> RedisStorage:
    if not isinstance(redis, RedisCluster):
        return RedisStorage("async+redis://", implementation="redispy",
                            key_prefix=keys.RATE_LIMIT_PREFIX,
                            connection_pool=redis.connection_pool)
    # The library would open a cluster client of its own from a URL (one that never
    # connects is made here); it is given the app's, whose connections are checked
    # (cache/cluster_trust.py), and its scripts are registered on that. Each counter's
    # two windows share a hash tag (keys.rate_limit), so its scripts touch one slot.
    node = redis.startup_nodes[0]
    storage = RedisClusterStorage(f"async+redis+cluster://{node.host}:{node.port}",
                                  implementation="redispy", key_prefix=keys.RATE_LIMIT_PREFIX)
    bridge = storage.bridge
    assert isinstance(bridge, RedispyBridge)
    bridge.storage = redis
    bridge.connection_getter = lambda _readonly: redis
    bridge.register_scripts()
    return storage


class RateLimits:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        # The app's own connection pool: no second set of connections to Redis. On the
        # embedded default that is the in-process fakeredis, whose Lua runs the library's
        # scripts, and one process is all there is to share the counts with.
        storage = _storage(redis)
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._redis = redis
        self._known_address_ttl = settings.log_in_known_address_ttl
        self.limits = {
            name: Limit(name, tuple(parse_many(getattr(settings, f"rate_limit_{name}"))),
                        what, fail_closed)
            for name, (what, fail_closed) in LIMITS.items()
        }
        self._last_warning: dict[str, float] = {}

    async def log_in(self, client: str | None, username: str) -> None:
        """Counts one attempt, before the password is looked at."""
        address, name = client_subject(client), username_subject(username)
        await self.hit("log_in_per_ip", address)
        await self.hit("log_in_per_username_and_ip", pair_subject(name, address))
        if not await self._is_known(name, address):
            await self.hit("log_in_per_username", name)

    async def logged_in(self, client: str | None, username: str) -> None:
        """After the right password (or a sign-up) from `client`: its tight count starts
        again and, for log_in_known_address_ttl, the address is known for the account."""
        if client is None:
            return  # no address, nothing to know: a shared "unknown" must never be trusted
        address, name = client_subject(client), username_subject(username)
        limit = self.limits["log_in_per_username_and_ip"]
        identifiers = keys.rate_limit(limit.name, pair_subject(name, address))
        await asyncio.gather(
            *(self._limiter.clear(item, *identifiers) for item in limit.items),
            self._redis.set(keys.known_log_in_address(name, address), 1,
                            ex=self._known_address_ttl),
        )

    async def sign_up(self, client: str | None) -> None:
        await self.hit("sign_up_per_ip", client_subject(client))

    async def mutation(self, user_id: int) -> None:
        await self.hit("mutations_per_user", str(user_id))

    async def upload(self, user_id: int) -> None:
        await self.hit("uploads_per_user", str(user_id))

    async def media(self, viewer_id: int) -> None:
        await self.hit("media_per_viewer", str(viewer_id))

    async def hit(self, name: str, subject: str) -> None:
        """Counts one request; raises RateLimited (with retryAfter) past the limit."""
        limit = self.limits[name]
        identifiers = keys.rate_limit(name, subject)
        for item in limit.items:
            try:
                allowed = await self._limiter.hit(item, *identifiers)
            except RedisError as error:
                self._cannot_count(limit, error)
                return
            if not allowed:
                retry_after = await self._retry_after(item, identifiers)
                raise RateLimited(
                    f"too many {limit.what}; try again in {retry_after} s",
                    retryAfter=retry_after,
                )

    async def _is_known(self, name: str, address: str) -> bool:
        try:
            return bool(await self._redis.exists(keys.known_log_in_address(name, address)))
        except RedisError as error:
            # Fails closed like the count it decides on.
            self._cannot_count(self.limits["log_in_per_username"], error)
            return False

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, str]) -> int:
        """Whole seconds until the counter lets one more request through."""
        try:
            stats = await self._limiter.get_window_stats(item, *identifiers)
            seconds = stats.reset_time - time.time()
        except RedisError:
            seconds = item.get_expiry()
        return max(1, min(item.get_expiry(), math.ceil(seconds)))

    def _cannot_count(self, limit: Limit, error: RedisError) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(limit.name, -WARN_EVERY) >= WARN_EVERY:
            self._last_warning[limit.name] = now
            log.warning(
                "rate limit %s cannot be counted (%s): %s", limit.name, type(error).__name__,
                "refusing those requests" if limit.fail_closed else "letting requests through",
            )
        if limit.fail_closed:
            # Worded as every other outage is (errors.UNAVAILABLE_MESSAGE), so a client
            # tells an outage from a refusal by the same words.
            raise ServiceUnavailable(
                f"{limit.what} cannot be counted right now: the service is temporarily "
                "unavailable; try again in a moment"
            ) from error


def client_subject(host: str | None) -> str:
    """An IPv4 address as it is; an IPv6 one by its /64, since one subscriber usually
    holds a whole /64 and could otherwise take a fresh address per request."""
    if host is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "host-" + _digest(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)


def username_subject(username: str) -> str:
    """A digest: the name comes straight from the client, of any length or characters,
    and need not belong to anyone."""
    return _digest(username)


def pair_subject(name: str, address: str) -> str:
    return f"{name}@{address}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

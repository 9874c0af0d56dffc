"""Whether the Redis a process talks to may be trusted, and making it so again.

Every cache and fence here is safe only while Redis keeps what it acknowledged: a
revocation's fence, a token's revoked mark, a moved response version, a graph written
after a change. A Redis that comes back with older state (restarted from a snapshot, or
from an AOF that lost its last second; a replica promoted before it caught up) brings
back what was taken away, all of it agreeing with itself, so no fence or epoch kept in
Redis can notice. What notices must live where it cannot roll back: the database.

- The database holds, per Redis, the run_id of the instance last vouched for and an
  epoch (models.RedisEpoch); the instance holds the epoch as its marker
  (keys.redis_trust).
- Every new connection, before its first command, reads the instance's run_id, its
  eviction policy and the marker (one round trip). A restart or a failover drops every
  client's connections, so nothing is read from the new instance before this check.
  The process remembers the last (run_id, marker) it found in the database, so an
  ordinary reconnect costs no SQL.
- A new run_id, a missing or other marker: the instance is not trusted. One process
  (under a lock in Redis) writes a new epoch and the run_id to the database, from when on
  no process can trust the instance's old marker; deletes every key but the durable ones
  (keys.DURABLE_PREFIXES: streams, persisted queries, rate limits); then writes the new
  marker. Until then every connection is refused with RedisNotTrusted, which a request
  answers as "temporarily unavailable".
- An evicting maxmemory-policy is refused the same way (and at start-up, loudly): an
  eviction can drop a fence (with the key it made pending) while what relies on it stays.

A restart that lost nothing is purged too: the cost of a cold cache, never of a leak.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterUnreachableError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.context import TortoiseContext

from pictograph.cache import keys
from pictograph.db import using_database
from pictograph.models import RedisEpoch
from pictograph.outages import RedisEvicts, RedisNotTrusted

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"
# How long a new connection waits for a recovery (this process's or another's) to
# finish before its caller is told Redis is unavailable: an empty or small Redis is
# purged in milliseconds, and then nobody notices.
RECOVERY_WAIT = 1.0
# The recovery lock's life, renewed while the purge runs.
RECOVERY_LOCK_MS = 15_000
SCAN_COUNT = 1000

# KEYS: the recovery lock. ARGV: holder, ttl ms. Renews the lock only if still held.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
# KEYS: the recovery lock, the marker. ARGV: holder, epoch. The marker, only if the lock
# is still this holder's (a holder that stalled past its lock must not mark a purge
# another may have begun since).
_MARK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: the recovery lock. ARGV: holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class ClusterCheck(Protocol):
    """What checks a cluster's new connections (cache/cluster_trust.ClusterTrust)."""

    async def check(self, connection: AbstractConnection) -> None: ...


class RedisUnfit(RuntimeError):
    """Redis is configured in a way that could grant what was revoked."""


def instance_facts(info: str) -> dict[str, str]:
    """run_id and maxmemory_policy (and anything else) from INFO's text."""
    facts = {}
    for line in info.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            facts[name.strip()] = value.strip()
    return facts


# A plain client of a cluster's node would start, then fail on the first key of another
# node's slots (MOVED): refused at start-up instead, with what to set.
CLUSTER_NODE = ("PICTOGRAPH_REDIS_URL names a node of a Redis Cluster, but "
                "PICTOGRAPH_REDIS_CLUSTER is not set: set PICTOGRAPH_REDIS_CLUSTER=true.")


def policy_problem(policy: str | None) -> str | None:
    if policy in (None, "", SAFE_POLICY):
        return None
    return (f"Redis evicts keys (maxmemory-policy {policy}): an evicted fence could serve "
            f"revoked content. Set maxmemory-policy {SAFE_POLICY} "
            "(CONFIG SET maxmemory-policy noeviction, and in redis.conf) and size "
            "maxmemory for the data, or leave maxmemory at 0.")


class RedisTrust:
    """One per Redis client (per node of a cluster: cache/cluster_trust.py): checks each
    new connection, and recovers an instance that is not trusted. `name` keys the
    database row (one per Redis or cluster node); `tag` is the marker's hash tag."""

    def __init__(self, database: TortoiseContext, name: str = "default",
                 tag: str = "redis") -> None:
        self.database = database
        self.name = name
        self.marker = keys.redis_trust(tag)
        self.recovery_lock = keys.redis_trust_recovery(tag)
        # A cluster node refuses a multi-key command across slots: its purge deletes key
        # by key (still one round trip per SCAN batch).
        self.key_by_key = False
        self._trusted: tuple[str, str] | None = None  # (run_id, epoch) last found in the db
        self._recovery: asyncio.Task[None] | None = None
        self._plain: Redis | None = None  # a client whose connections skip the check

    def bind(self, pool: ConnectionPool) -> None:
        """Makes every connection `pool` opens check the instance first; keeps a plain
        client beside it for the recovery itself."""
        plain_class = pool.connection_class
        pool.connection_class = type(f"Checked{plain_class.__name__}",
                                     (CheckedConnection, plain_class), {})
        options = {name: value for name, value in pool.connection_kwargs.items()
                   if name != "trust"}
        self._plain = Redis(connection_pool=ConnectionPool(connection_class=plain_class,
                                                           max_connections=2, **options))
        pool.connection_kwargs["trust"] = self

    def recover_with(self, plain: Redis) -> None:
        """For a node of a cluster, checked by cache/cluster_trust.py: `plain` is a client
        of that node alone, whose connections skip the check."""
        self._plain = plain
        self.key_by_key = True

    @property
    def vouched(self) -> bool:
        """Whether this process has found the instance vouched for (since it started)."""
        return self._trusted is not None

    async def close(self) -> None:
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        if self._plain is not None:
            await self._plain.aclose()

    async def check(self, connection: AbstractConnection) -> None:
        """Before a new connection's first command: returns if the instance is trusted,
        raises RedisNotTrusted (or RedisUnfit's message in it) if not."""
        deadline = time.monotonic() + RECOVERY_WAIT
        while True:
            run_id, policy, marker, clustered = await _read_instance(connection, self.marker)
            problem = policy_problem(policy) or (
                CLUSTER_NODE if clustered and not self.key_by_key else None)
            if problem is not None:
                log.error("%s", problem)
                raise RedisEvicts(problem)
            if marker is not None and self._trusted == (run_id, marker):
                return
            if await self._vouched(run_id, marker):
                return
            self._start_recovery(run_id)
            if time.monotonic() >= deadline:
                raise RedisNotTrusted("redis may have lost acknowledged writes; its caches "
                                      "are being purged")
            await asyncio.sleep(0.05)

    async def _vouched(self, run_id: str, marker: str | None) -> bool:
        if marker is None:
            return False
        with using_database(self.database):
            row = await RedisEpoch.get_or_none(name=self.name)
        if row is None or row.run_id != run_id or row.epoch != marker:
            return False
        if self._trusted is not None and self._trusted[0] != run_id:
            log.warning("redis %s: a new instance (run_id %s…), purged and trusted",
                        self.name, run_id[:8])
        self._trusted = (run_id, marker)
        return True

    def _start_recovery(self, run_id: str) -> None:
        if self._recovery is None or self._recovery.done():
            # Not the caller's task: a request that gives up waiting leaves it running.
            self._recovery = asyncio.get_running_loop().create_task(self._recover(run_id))

    async def _recover(self, run_id: str) -> None:
        assert self._plain is not None
        redis = self._plain
        holder = secrets.token_hex(16)
        try:
            if not await redis.set(self.recovery_lock, holder, nx=True,
                                   px=RECOVERY_LOCK_MS):
                return  # another process purges it; the check waits for its marker
            if await self._vouched_now(redis, run_id):
                # A purge ended between the check that found the marker wrong and this
                # lock: the instance is vouched for, and purging it again would drop
                # what trusted connections have written since.
                await redis.eval(_RELEASE, 1, self.recovery_lock, holder)
                return
            epoch = secrets.token_hex(16)
            # First the database: from now on no process vouches for the old marker, nor
            # for any marker this instance held before, whatever it still serves.
            with using_database(self.database):
                _, first = await RedisEpoch.update_or_create(
                    defaults={"epoch": epoch, "run_id": run_id}, name=self.name)
            said = log.info if first else log.warning
            said(
                "redis %s (run_id %s…) is not vouched for (%s): purging its caches",
                self.name, run_id[:8],
                "first start" if first else "a restart, a failover or a flush")
            dropped = await purge(redis, holder, lock=self.recovery_lock,
                                  key_by_key=self.key_by_key)
            if await redis.eval(_MARK, 2, self.recovery_lock, self.marker, holder, epoch):
                said("redis %s purged (%d keys dropped, durable keys kept) and trusted "
                     "again", self.name, dropped)
            else:
                log.warning("redis %s: purge outlived its lock; another process goes on",
                            self.name)
        except RedisError as error:
            log.warning("redis %s: purge interrupted (%s); the next connection retries",
                        self.name, type(error).__name__)
        except Exception:
            log.exception("redis %s: purge failed; the next connection retries", self.name)

    async def _vouched_now(self, redis: Redis, run_id: str) -> bool:
        marker = await redis.get(self.marker)
        with using_database(self.database):
            row = await RedisEpoch.get_or_none(name=self.name)
        return row is not None and (row.run_id, row.epoch) == (run_id, marker)


async def purge(redis: Redis, holder: str | None = None,
                durable: Sequence[str] = keys.DURABLE_PREFIXES, *,
                lock: str = keys.redis_trust_recovery(), key_by_key: bool = False) -> int:
    """Deletes every key but the durable ones; renews the recovery lock as it goes.
    `key_by_key`: one UNLINK per key (pipelined), for a cluster node's many slots."""
    dropped, cursor = 0, 0
    while True:
        cursor, found = await redis.scan(cursor, count=SCAN_COUNT)
        doomed = [key for key in found if not key.startswith(tuple(durable))]
        if doomed and key_by_key:
            async with redis.pipeline(transaction=False) as pipe:
                for key in doomed:
                    pipe.unlink(key)
                dropped += sum(await pipe.execute())
        elif doomed:
            dropped += await redis.unlink(*doomed)
        if holder is not None and not await redis.eval(
                _RENEW, 1, lock, holder, RECOVERY_LOCK_MS):
            raise RedisNotTrusted("recovery lock lost")
        if cursor == 0:
            return dropped


async def _read_instance(connection: AbstractConnection,
                         marker_key: str) -> tuple[str, str | None, str | None, bool]:
    """(run_id, maxmemory-policy, marker, whether the node is in cluster mode) in one
    round trip on the new connection."""
    await connection.send_packed_command(
        connection.pack_commands([("INFO",), ("GET", marker_key)]))
    facts = instance_facts(_text(await connection.read_response()))
    clustered = facts.get("cluster_enabled") == "1"
    try:
        marker = await connection.read_response()
    except ResponseError:
        # A cluster's node that does not serve the marker's slot (MOVED, CLUSTERDOWN):
        # only a plain client reaches it so, and the caller refuses it for that.
        if not clustered:
            raise
        marker = None
    run_id = facts.get("run_id")
    if not run_id:
        raise RedisNotTrusted("redis did not say its run_id (INFO server)")
    return (run_id, facts.get("maxmemory_policy"),
            _text(marker) if marker is not None else None, clustered)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CheckedConnection:
    """Mixed in before redis-py's connection class: the instance is checked after the
    handshake (AUTH, SELECT) and before anything else is sent."""

    def __init__(self, *args: Any, trust: RedisTrust | ClusterCheck, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._trust = trust

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        await super().on_connect_check_health(check_health=check_health)  # type: ignore[misc]
        await self._trust.check(self)  # type: ignore[arg-type]


async def check_policy(redis: Redis) -> None:
    """Raises RedisEvicts if the instance (every master of a cluster) is set to evict now
    (readiness asks this, so an operator sees a policy changed at run time before any
    new connection is refused)."""
    if isinstance(redis, RedisCluster):
        await redis.ping(target_nodes=RedisCluster.PRIMARIES)
        found = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
        for facts in found.values():
            check_policy_facts(facts)
        return
    await redis.ping()
    try:
        facts = await redis.info("memory")
    except ResponseError:  # the in-process fakeredis, which cannot evict
        return
    check_policy_facts(facts)


def check_policy_facts(facts: dict[str, Any]) -> None:
    problem = policy_problem(facts.get("maxmemory_policy"))
    if problem is not None:
        raise RedisEvicts(problem)


async def ensure_trusted(redis: Redis, within: float = 60.0) -> None:
    """At start-up: waits until the instance is trusted (purging it if needed), so a
    process starts serving only from a Redis it vouched for. Raises RedisUnfit at once
    for an evicting policy, and RedisNotTrusted if the purge takes longer than `within`
    seconds."""
    deadline = time.monotonic() + within
    # A cluster's masters are each checked (and purged) on their own connections.
    targets = {"target_nodes": RedisCluster.PRIMARIES} if isinstance(redis, RedisCluster) else {}
    while True:
        try:
            await redis.ping(**targets)
            return
        except RedisEvicts as error:
            raise RedisUnfit(str(error)) from None
        except (RedisConnectionError, RedisTimeoutError, RedisClusterUnreachableError) as error:
            # Down: the process starts anyway and answers "temporarily unavailable"; the
            # first connection that gets through is checked like any other.
            log.warning("redis unreachable at start-up (%s); checked when it answers",
                        type(error).__name__)
            return
        except RedisNotTrusted:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)

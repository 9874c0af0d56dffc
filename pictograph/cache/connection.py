from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import fakeredis
from fakeredis.aioredis import FakeRedis
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterUnreachableError, SlotNotCoveredError

from pictograph.cache.replicas import ReplicaWait
from pictograph.settings import Settings


class IdleFirstPool(BlockingConnectionPool):
    """redis-py's blocking pool, handing out an idle connection (and taking one back)
    without its Condition and timeout when nobody waits.

    Those cost about 15 us of CPU per command here (a sixth of a cached read's Redis
    round trip), and they only matter when the pool is empty: then a caller waits as
    before, bounded by the pool's timeout, and a connection given back while anyone
    waits goes through the Condition, which wakes them. (redis-py's own wait-time metric,
    off unless its observability is configured, is not recorded on the quick way.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self._available_connections or self._in_maintenance:
            self._waiting += 1
            try:
                return await super().get_connection()
            finally:
                self._waiting -= 1
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            await self.ensure_connection(connection)  # connected, and nothing left unread
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        if self._waiting or self._in_maintenance:
            await super().release(connection)  # under the Condition, which wakes them
            return
        await ConnectionPool.release(self, connection)
        if self._waiting:  # someone began to wait while the release paused (on its lock)
            async with self._condition:
                self._condition.notify()


def open_redis(settings: Settings) -> Redis:
    """A client for the configured Redis, or an in-process one for the embedded default.

    The pool blocks when all its connections are busy: a burst (a thousand live
    subscribers judging one post at once) waits a moment for a connection instead of
    failing with "Too many connections", which is what redis-py's default pool does.
    (A cluster's client keeps a pool per node, which does not block: past
    redis_max_connections on one node a command fails with MaxConnectionsError.)

    A cluster client is a RedisCluster, which answers the same commands as Redis (the
    code types it as Redis): every operation that needs one instant touches one slot.

    A client of a real Redis carries the setting for a revocation's WAIT on its replicas
    (cache/replicas.py); the embedded one has no replicas to wait for.
    """
    if settings.redis_cluster:
        cluster = open_cluster(settings)
        ReplicaWait(settings.redis_wait_replicas).attach(cluster)
        return cluster  # type: ignore[return-value]
    pool_options = {"max_connections": settings.redis_max_connections,
                    "timeout": settings.redis_pool_timeout}
    if settings.redis_url is None:
        fake = FakeRedis(server=fakeredis.FakeServer(), decode_responses=True,
                         connection_pool_class=IdleFirstPool, **pool_options)
        # FakeRedis builds the pool without passing the timeout on (it waited 20 s).
        fake.connection_pool.timeout = settings.redis_pool_timeout
        return fake
    pool = IdleFirstPool.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
        **pool_options,
    )
    client = Redis.from_pool(pool)
    ReplicaWait(settings.redis_wait_replicas).attach(client)
    return client


class Cluster(RedisCluster):
    """redis-py's cluster client, whose pipelines send the scripts registered on it as
    EVAL, their text, instead of EVALSHA.

    A single Redis's pipeline loads its scripts before it runs; a cluster's does not, so
    a node that never saw a script (a new client, a restarted node, a promoted replica)
    fails it with NOSCRIPT after the pipeline's other commands, some scripts included,
    have run on the other nodes, and running it again would repeat them. Redis caches an
    EVAL'd script by its digest, so what this costs is the text on the wire."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_texts: dict[str, str] = {}  # sha1: text

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _unreachable_as_connection_error():
            return await super().execute_command(*args, **kwargs)

    def register_script(self, script: str) -> Any:
        registered = super().register_script(script)
        self.script_texts[registered.sha] = registered.script
        return registered

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # which refuses it
        return _ScriptTextPipeline(self, transaction)


class ClusterUnreachable(RedisConnectionError):
    """No node of the cluster answered, or none serves a key's slot: a ConnectionError,
    as a single Redis that is away raises, so every place that copes with an outage
    copes with this one (redis-py's own errors for it are not even RedisErrors)."""


@contextmanager
def _unreachable_as_connection_error() -> Iterator[None]:
    try:
        yield
    except (RedisClusterUnreachableError, SlotNotCoveredError) as error:
        raise ClusterUnreachable(str(error)) from error


class _ScriptTextPipeline(ClusterPipeline):
    async def initialize(self) -> ClusterPipeline:
        with _unreachable_as_connection_error():
            return await super().initialize()

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        with _unreachable_as_connection_error():
            return await super().execute(raise_on_error, allow_redirections)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        assert isinstance(self.cluster_client, Cluster)
        text = self.cluster_client.script_texts.get(sha)
        if text is None:
            return super().evalsha(sha, numkeys, *keys_and_args)
        return self.eval(text, numkeys, *keys_and_args)


def open_cluster(settings: Settings) -> RedisCluster:
    assert settings.redis_url is not None  # settings refuse a cluster without a node
    return Cluster.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        max_connections=settings.redis_max_connections,
    )


def is_cluster(redis: Redis | RedisCluster) -> bool:
    return isinstance(redis, RedisCluster)


def subscriber_client(redis: Redis) -> Redis:
    """A client on the same server for pub/sub, whose connections never retry silently.

    A retried read reconnects and re-subscribes behind the caller's back, and whatever
    was published in between is lost without anyone knowing. With no retries every
    failure reaches the live hub, which re-subscribes itself and tells its listeners
    that messages may have been missed.

    On a cluster, `node_subscriber` gives one per node instead (sharded pub/sub)."""
    pool = redis.connection_pool
    options = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    options.pop("retry_on_timeout", None)
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class,
                                                max_connections=4, **options))


def node_subscriber(node: ClusterNode) -> Redis:
    """subscriber_client's kind for one node of a cluster: sharded pub/sub (SSUBSCRIBE)
    hears a channel only on the node that serves its slot.

    Its connections skip the trust check (cache/cluster_trust.py) that the client's
    own make, which purges a node that may have lost writes: a subscriber reads no key,
    its messages are hints each subscription checks against the live graph, and the hub
    resyncs every subscription when it reconnects; a node rolled back sends no old
    message again. So the hub never starts a node's purge; requests do, as before."""
    options = {**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    options.pop("retry_on_timeout", None)
    connection_class = node.connection_class
    if options.pop("trust", None) is not None:
        # The checked class is (CheckedConnection, the plain class): the plain one.
        connection_class = connection_class.__bases__[-1]
    return Redis(connection_pool=ConnectionPool(connection_class=connection_class,
                                                max_connections=4, **options))


def queue_reads(
    pipe: Pipeline | ClusterPipeline, keys: Sequence[str]
) -> Callable[[list[Any]], list[Any]]:
    """Queues a read of each key's string value on `pipe`; the function returned takes
    the values, in the keys' order, out of the pipeline's replies.

    One MGET, not a GET per key: redis-py spends more CPU on each command it packs and
    reads back than Redis does on it, and a page reads about forty keys (an uncached
    feed cost 8 % less CPU this way, bench/request_cost.py). A cluster refuses an MGET
    whose keys are on different slots, so there it is one MGET per slot, and the
    cluster pipeline sends each to its node: a page costs one round trip per node."""
    start = len(pipe)
    if not keys:
        return lambda replies: []
    if not isinstance(pipe, ClusterPipeline):
        pipe.mget(keys)
        return lambda replies: replies[start]
    by_slot: dict[int, list[int]] = defaultdict(list)  # slot: positions in `keys`
    for position, key in enumerate(keys):
        by_slot[key_slot(key.encode())].append(position)
    groups = list(by_slot.values())
    for positions in groups:
        # By name: ClusterPipeline blocks its mget() method, which would send keys of
        # any slots; one slot's keys are one node's single command.
        pipe.execute_command("MGET", *(keys[position] for position in positions))

    def values(replies: list[Any]) -> list[Any]:
        found: list[Any] = [None] * len(keys)
        for reply, positions in zip(replies[start:start + len(groups)], groups, strict=True):
            for position, value in zip(positions, reply, strict=True):
                found[position] = value
        return found

    return values

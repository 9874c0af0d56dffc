"""Which backing service an error says is down, and how a client is told: one place
that every path (GraphQL, /media, /uploads, workers, the id-node heartbeat) asks."""

from __future__ import annotations

import sqlite3

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as StorageConnectionError
from botocore.exceptions import HTTPClientError as StorageHTTPError
from redis.exceptions import (
    ClusterDownError,
    RedisClusterUnreachableError,
    RedisError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemory
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.exceptions import DBConnectionError

from pictograph.errors import UNAVAILABLE_MESSAGE, ServiceUnavailable
from pictograph.ids import NoIdNode


class RedisNotTrusted(RedisError):
    """Redis may have lost writes it acknowledged (a restart, a failover, a flush): until
    it is purged and vouched for again (cache/trust.py), nothing it holds is used."""


class RedisEvicts(RedisNotTrusted):
    """Redis is set up in a way nothing may be read from: it evicts keys (a fence or a
    registration could vanish), or it is a cluster's node reached as a lone server."""


# A cluster with a shard down (CLUSTERDOWN, a slot nobody serves, a failover under way)
# or no node reachable at all.
CLUSTER_AWAY = ClusterDownError | SlotNotCoveredError | RedisClusterUnreachableError

_DATABASE_DOWN = (
    asyncpg.PostgresConnectionError,  # lost in the middle of a statement, or refused
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.TooManyConnectionsError,
    DBConnectionError,  # Tortoise's, when it cannot open its pool
    NoIdNode,  # the id-node lease, kept in the database, could not be renewed
)


def unavailable_service(error: BaseException | None) -> str | None:
    """Which backing service `error` (or what caused it) says is down or unreachable:
    "database", "redis", "storage" or "network" (a socket error of no driver's own);
    None for any other error. Only failures that a retry may cure count."""
    for _ in range(5):  # a driver error may arrive wrapped (a failed rollback, a retry)
        if error is None:
            return None
        if isinstance(error, RedisConnectionError | RedisTimeoutError | RedisNotTrusted
                      | RedisOutOfMemory | CLUSTER_AWAY):
            # Out of memory (maxmemory under noeviction): a write, a fence among them,
            # is refused, so whatever needed it fails before it changed anything.
            return "redis"
        if isinstance(error, StorageConnectionError | StorageHTTPError):
            return "storage"
        if isinstance(error, ClientError) and int(
            error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        ) >= 500:
            return "storage"
        if isinstance(error, _DATABASE_DOWN) or (
            isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error)
        ) or (
            # Another process (a `pictograph seed`) holds the embedded database's write
            # lock for longer than SQLite's busy timeout.
            isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)
        ):
            return "database"
        if isinstance(error, ConnectionError | TimeoutError) and not isinstance(
            error, BotoCoreError | RedisError
        ):
            # A refused, reset or silent socket: asyncpg connects, and times out
            # (connect and command timeouts), with these.
            return "network"
        error = error.__cause__ or error.__context__
    return None


def as_unavailable(error: BaseException | None) -> ServiceUnavailable | None:
    """The client's view of an outage: a coded, retryable error naming no internals."""
    if unavailable_service(error) is None:
        return None
    return ServiceUnavailable(UNAVAILABLE_MESSAGE)

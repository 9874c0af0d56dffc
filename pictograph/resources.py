"""The connections one process holds, opened in the lifespan and closed with it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as StorageConnectionError
from botocore.exceptions import HTTPClientError as StorageHTTPError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.context import TortoiseContext
from tortoise.exceptions import DBConnectionError

from pictograph.cache import keys
from pictograph.cache.connection import open_redis
from pictograph.cache.rate_limits import RateLimits
from pictograph.db import open_database
from pictograph.errors import ServiceUnavailable
from pictograph.http.metrics import Metrics
from pictograph.ids import configure_node
from pictograph.live.hub import LiveHub
from pictograph.passwords import Passwords
from pictograph.settings import Settings
from pictograph.storage import ObjectStorage, open_storage

log = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    database: TortoiseContext
    redis: Redis
    storage: ObjectStorage
    passwords: Passwords
    metrics: Metrics
    secret_key: bytes
    live: LiveHub
    rate_limits: RateLimits

    def describe(self) -> str:
        database = "sqlite" if self.settings.resolved_database_url().startswith("sqlite") else (
            "postgresql"
        )
        redis = "fakeredis (in-process)" if self.settings.embedded_redis else "redis"
        return f"database={database} redis={redis} storage={self.storage.name}"


async def _take_id_node(redis: Redis) -> None:
    """Each process takes its own node number for ids, so two never mint the same one.
    Without Redis at start-up the process keeps a random node and says so: it can still
    start and answer /readyz with 503 rather than crash-loop."""
    try:
        configure_node(await redis.incr(keys.id_nodes()))
    except RedisError as error:
        log.warning("redis unavailable at start-up (%s); using a random id node",
                    type(error).__name__)


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        database = await open_database(settings)
        stack.push_async_callback(database.close_connections)
        redis = open_redis(settings)
        stack.push_async_callback(redis.aclose)
        storage = await stack.enter_async_context(open_storage(settings))
        if settings.embedded_storage:
            await storage.ensure_bucket()
        resources = Resources(
            settings=settings,
            database=database,
            redis=redis,
            storage=storage,
            passwords=Passwords(settings),
            metrics=Metrics(),
            secret_key=settings.resolved_secret_key(),
            live=LiveHub(redis),
            rate_limits=RateLimits(redis, settings),
        )
        await resources.live.start()
        stack.push_async_callback(resources.live.stop)
        await _take_id_node(redis)
        log.info("resources open: %s", resources.describe())
        yield resources


UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; try again in a moment."
_DATABASE_DOWN = (
    asyncpg.PostgresConnectionError,  # lost in the middle of a statement, or refused
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.TooManyConnectionsError,
    DBConnectionError,  # Tortoise's, when it cannot open its pool
)


def unavailable_service(error: BaseException | None) -> str | None:
    """Which backing service `error` (or what caused it) says is down or unreachable:
    "database", "redis", "storage" or "network" (a socket error of no driver's own);
    None for any other error. Only failures that a retry may cure count."""
    for _ in range(5):  # a driver error may arrive wrapped (a failed rollback, a retry)
        if error is None:
            return None
        if isinstance(error, RedisConnectionError | RedisTimeoutError):
            return "redis"
        if isinstance(error, StorageConnectionError | StorageHTTPError):
            return "storage"
        if isinstance(error, ClientError) and int(
            error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        ) >= 500:
            return "storage"
        if isinstance(error, _DATABASE_DOWN) or (
            isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error)
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

"""The connections one process holds, opened in the lifespan and closed with it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.context import TortoiseContext

from pictograph.cache import keys
from pictograph.cache.connection import open_redis
from pictograph.db import open_database
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
        )
        await resources.live.start()
        stack.push_async_callback(resources.live.stop)
        await _take_id_node(redis)
        log.info("resources open: %s", resources.describe())
        yield resources

"""The connections one process holds, opened in the lifespan and closed with it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from tortoise.context import TortoiseContext

from pictograph.cache.cluster_trust import ClusterTrust
from pictograph.cache.connection import open_redis
from pictograph.cache.presence import Presence
from pictograph.cache.pubsub import LiveHub
from pictograph.cache.rate_limits import RateLimits
from pictograph.cache.trust import RedisTrust, ensure_trusted
from pictograph.db import open_database
from pictograph.metrics import Metrics
from pictograph.node_lease import NodeLease, leased_id_node
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
    presence: Presence  # this process's open sockets, renewed in Redis
    rate_limits: RateLimits
    id_lease: NodeLease

    def describe(self) -> str:
        database = "sqlite" if self.settings.resolved_database_url().startswith("sqlite") else (
            "postgresql"
        )
        redis = ("fakeredis (in-process)" if self.settings.embedded_redis else
                 "redis cluster" if self.settings.redis_cluster else "redis")
        return (f"database={database} redis={redis} storage={self.storage.name} "
                f"id_node={self.id_lease.node}")


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        database = await open_database(settings)
        stack.push_async_callback(database.close_connections)
        # Before anything else that could mint ids, and given back before the database
        # closes.
        id_lease = await stack.enter_async_context(leased_id_node(database))
        redis = open_redis(settings)
        stack.push_async_callback(redis.aclose)
        if not settings.embedded_redis:
            # Nothing is read from a Redis that may have rolled back (cache/trust.py);
            # an evicting one stops start-up here.
            trust: RedisTrust | ClusterTrust
            if isinstance(redis, RedisCluster):
                trust = ClusterTrust(database)
                trust.bind(redis)
            else:
                trust = RedisTrust(database)
                trust.bind(redis.connection_pool)
            stack.push_async_callback(trust.close)
            await ensure_trusted(redis)
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
            presence=Presence(redis),
            rate_limits=RateLimits(redis, settings),
            id_lease=id_lease,
        )
        await resources.live.start()
        stack.push_async_callback(resources.live.stop)
        resources.live.after_resync(resources.presence.renew_soon)
        await resources.presence.start()
        stack.push_async_callback(resources.presence.stop)
        log.info("resources open: %s", resources.describe())
        yield resources

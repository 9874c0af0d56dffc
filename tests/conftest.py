"""One app per backend: the embedded default always, real services when reachable.

Every test that asks for `client` runs once on each backend. With
PICTOGRAPH_REQUIRE_SERVICES=1 an unreachable PostgreSQL, Redis or S3 fails the run.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import _current_context

from pictograph.app import create_app
from pictograph.db import using_database
from pictograph.models import IdNodeLease, RedisEpoch
from pictograph.resources import Resources
from pictograph.settings import Settings
from tests.support.rate_limits import Tighten, tighten_limits
from tests.support.redis_state import flush_caches
from tests.support.s3 import moto_server
from tests.support.server import served

ADMIN_DATABASE_URL = os.environ.get(
    "PICTOGRAPH_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("PICTOGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PROCESS_REDIS_URL = os.environ.get(
    "PICTOGRAPH_TEST_PROCESS_REDIS_URL", "redis://127.0.0.1:6379/14"
)  # for tests that start server processes
# PICTOGRAPH_TEST_REDIS_CLUSTER=1 runs the services backend, and the processes tests
# start, on a Redis Cluster of the run's own (tests/support/redis_cluster.py, on ports
# PICTOGRAPH_TEST_REDIS_CLUSTER_PORT to +5); a redis:// URL there names a running one.
# A cluster has one database, so the app and the processes share it.
_CLUSTER = os.environ.get("PICTOGRAPH_TEST_REDIS_CLUSTER", "")
CLUSTER_FIRST_PORT = int(os.environ.get("PICTOGRAPH_TEST_REDIS_CLUSTER_PORT", "22001"))
START_CLUSTER = _CLUSTER == "1"
REDIS_CLUSTER = bool(_CLUSTER)
if REDIS_CLUSTER:
    TEST_REDIS_URL = PROCESS_REDIS_URL = (
        f"redis://127.0.0.1:{CLUSTER_FIRST_PORT}/0" if START_CLUSTER else _CLUSTER)
REQUIRE_SERVICES = os.environ.get("PICTOGRAPH_REQUIRE_SERVICES") == "1"

# Cheap hashing: the suite signs up hundreds of users. Production keeps the defaults.
FAST_HASHING: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 64,
    "argon2_parallelism": 1,
}
# The suite signs up hundreds of users from one address and logs in again and again;
# tests/cache/test_rate_limits.py sets tight limits of its own.
GENEROUS_RATE_LIMITS: dict[str, Any] = {
    name: "100000/minute" for name in Settings.model_fields if name.startswith("rate_limit_")
}


Configured = Callable[..., httpx.AsyncClient]


@dataclass
class Backend:
    name: str
    settings: Settings


def open_test_redis(url: str, **options: Any) -> Redis:
    """A client of a test Redis: a cluster's when the run is on one (its FLUSHDB goes to
    every master)."""
    if REDIS_CLUSTER:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return Redis.from_url(url, **options)


@pytest.fixture(scope="session", autouse=START_CLUSTER)
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The run's own cluster, started once (PICTOGRAPH_TEST_REDIS_CLUSTER=1)."""
    from tests.support.redis_cluster import redis_cluster as started

    with started(tmp_path_factory.mktemp("redis-cluster"), CLUSTER_FIRST_PORT) as cluster:
        yield cluster.url


async def require_services() -> None:
    """Skips the test when PostgreSQL or Redis is unreachable; fails it under
    PICTOGRAPH_REQUIRE_SERVICES=1 (CI), so a service down is never a silent skip."""
    problem = await _services_unreachable()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"PICTOGRAPH_REQUIRE_SERVICES=1 but {problem}")
        pytest.skip(f"real services unreachable: {problem}")


async def _services_unreachable() -> str | None:
    try:
        connection = await asyncpg.connect(ADMIN_DATABASE_URL, timeout=3)
        await connection.close()
    except Exception as error:
        return f"PostgreSQL at {ADMIN_DATABASE_URL}: {error!r}"
    redis = open_test_redis(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        await redis.ping()
    except Exception as error:
        return f"Redis at {TEST_REDIS_URL}: {error!r}"
    finally:
        await redis.aclose()
    return None


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session", params=["embedded", "services"])
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    data_dir = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        yield Backend("embedded", Settings(data_dir=data_dir, run_workers=False,
                                           **FAST_HASHING, **GENEROUS_RATE_LIMITS))
        return

    await require_services()
    database = f"pictograph_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{database}"')
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = Settings(
        data_dir=data_dir,
        database_url=_with_database(ADMIN_DATABASE_URL, database),
        redis_url=TEST_REDIS_URL,
        redis_cluster=REDIS_CLUSTER,
        s3_endpoint_url=endpoint,
        s3_bucket=f"pictograph-test-{secrets.token_hex(4)}",
        secret_key=secrets.token_urlsafe(48),  # PostgreSQL refuses to start without one
        run_workers=False,
        **FAST_HASHING,
        **GENEROUS_RATE_LIMITS,
    )
    redis = open_test_redis(TEST_REDIS_URL)
    await redis.flushdb()
    try:
        await _migrate(settings)
        yield Backend("services", settings)
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _migrate(settings: Settings) -> None:
    from pictograph.db import apply_migrations
    from pictograph.storage import open_storage

    await apply_migrations(settings.resolved_database_url())
    async with open_storage(settings) as storage:
        await storage.ensure_bucket()


@pytest.fixture(scope="session")
async def app(backend: Backend) -> AsyncIterator[Starlette]:
    # Tortoise caches prepared INSERTs per connection *name* across contexts, so the
    # SQLite statements would otherwise be reused against PostgreSQL in this process.
    EXECUTOR_CACHE.clear()
    application = create_app(backend.settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def resources(app: Starlette) -> Resources:
    return app.state.resources


async def empty_stores(resources: Resources) -> None:
    """Empty tables and an empty Redis (the app's own database of both)."""
    with using_database(resources.database):
        connection = resources.database.db()
        # Not the id-node leases nor the Redis epochs: they belong to the apps, which live
        # for the session.
        tables = [model._meta.db_table for model in resources.database.apps.get_models_iterable()
                  if model not in (IdNodeLease, RedisEpoch)]
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                await connection.execute_script(f"DELETE FROM {table}")  # noqa: S608
    # Empty but for the trust marker, which the app's Redis epoch vouches for (without
    # it, the next new connection would purge Redis again in the middle of a test).
    await flush_caches(resources.redis)


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts with empty tables and an empty Redis."""
    if "app" not in request.fixturenames:
        yield
        return
    resources: Resources = request.getfixturevalue("app").state.resources
    await empty_stores(resources)
    # Tests read and write models directly too; give them the app's ORM context.
    # (Set, not reset: pytest-asyncio may tear a fixture down in another Context.)
    previous = _current_context.set(resources.database).old_value
    yield
    _current_context.set(None if previous is Token.MISSING else previous)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pictograph.test") as c:
        yield c


@pytest.fixture
def data_dir(backend: Backend) -> Path:
    return backend.settings.data_dir


@pytest.fixture
def tighten(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Tighten:
    """tighten(log_in_per_ip="3/minute", ...): the app's limits for this test."""
    return functools.partial(tighten_limits, resources, monkeypatch)


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    """The test app (its lifespan already running) behind a real uvicorn on a loopback
    port, in this process: its base URL, http://127.0.0.1:port."""
    async with served(app) as base_url:
        yield base_url


@pytest.fixture
async def configured(app: Starlette) -> AsyncIterator[Configured]:
    """Clients of the app with some settings changed. Each borrows the backend app's open
    resources: starting a second app would rebind Tortoise's models process-wide."""
    clients: list[httpx.AsyncClient] = []

    def client_with(**settings: Any) -> httpx.AsyncClient:
        changed = app.state.resources.settings.model_copy(update=settings)
        other = create_app(changed)
        other.state.resources = app.state.resources
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=other),
                                   base_url="http://configured")
        clients.append(client)
        return client

    yield client_with
    for client in clients:
        await client.aclose()

"""Each fault test gets its own PostgreSQL database and the process Redis database,
with server and worker processes pointed at them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import (
    ADMIN_DATABASE_URL,
    PROCESS_REDIS_URL,
    _with_database,
    open_test_redis,
    require_services,
)
from tests.faults.stack import TEST_CLIENT, Stack
from tests.support.processes import process_env, process_redis_env


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    await require_services()
    from pictograph.db import apply_migrations

    name = f"pictograph_faults_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(ADMIN_DATABASE_URL, name)
    redis = open_test_redis(PROCESS_REDIS_URL, decode_responses=True, client_name=TEST_CLIENT)
    await redis.flushdb()
    db: asyncpg.Connection | None = None
    try:
        await apply_migrations(url)
        db = await asyncpg.connect(url)
        env = process_env(
            tmp_path / "data",
            PICTOGRAPH_DATABASE_URL=url,
            **process_redis_env(),
            # A killed worker's jobs are taken over after a second, not thirty.
            PICTOGRAPH_WORKER_CLAIM_IDLE="1",
        )
        yield Stack(env, url, db, redis, tmp_path / "data")
    finally:
        if db is not None:
            await db.close()
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

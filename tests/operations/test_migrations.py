"""The migrations: they say what the models say, and an upgrade keeps every row, on
SQLite (the embedded default's file, upgraded in place) and on PostgreSQL."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise.context import TortoiseContext
from tortoise.migrations.api.migrate import migrate
from tortoise.migrations.autodetector import MigrationAutodetector

from pictograph.db import tortoise_config
from tests.conftest import ADMIN_DATABASE_URL, _with_database, require_services

BEFORE_PER_OWNER_KEYS = "models.0007_redis_epochs"
# A network of one user with one READY post, as an embedded database holds it.
ROWS = [
    "INSERT INTO users (id, username, display_name, bio, is_private, password_hash,"
    " follower_count, following_count, post_count, graph_seq, created_at)"
    " VALUES (1, 'ada', '', '', false, 'x', 0, 0, 1, 0, '2026-01-01 00:00:00+00')",
    "INSERT INTO uploads (id, owner_id, content_type, byte_size, object_key, expires_at,"
    " post_id, created_at) VALUES (5, 1, 'image/jpeg', 10, 'uploads/5/k',"
    " '2026-01-01 00:00:00+00', 7, '2026-01-01 00:00:00+00')",
    "INSERT INTO posts (id, author_id, caption, status, upload_id, created_at)"
    " VALUES (7, 1, '', 'READY', 5, '2026-01-01 00:00:00+00')",
    "INSERT INTO media_variants (post_id, size, object_key, width, height, content_type,"
    " byte_size, etag) VALUES (7, 'THUMBNAIL', 'media/7/t', 1, 1, 'image/jpeg', 1, 'e'),"
    " (7, 'FULL', 'media/7/f', 1, 1, 'image/jpeg', 1, 'e')",
]
TABLES = {"users": 1, "uploads": 1, "posts": 1, "media_variants": 2}
SECOND_POST_OF_THE_UPLOAD = (
    "INSERT INTO posts (id, author_id, caption, status, upload_id, created_at)"
    " VALUES (8, 1, '', 'READY', 5, '2026-01-01 00:00:00+00')")

Execute = Callable[[str], Coroutine[Any, Any, Any]]
Count = Callable[[str], Coroutine[Any, Any, int]]


async def test_the_migrations_say_what_the_models_say() -> None:
    """`pictograph makemigrations` would write nothing: no model change lacks its file."""
    config = tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as context:
        await context.init(config=config)
        writers = await MigrationAutodetector(context.apps, config["apps"]).changes()
    assert [writer.name for writer in writers] == []


async def _migrate(url: str, target: str | None = None) -> None:
    async with TortoiseContext():
        await migrate(config=tortoise_config(url), target=target)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path
                   ) -> AsyncIterator[tuple[str, Execute, Count]]:
    """(URL, run a statement, count a table's rows) of an empty database."""
    if request.param == "sqlite":
        path = tmp_path / "pictograph.sqlite3"

        async def execute(sql: str) -> None:
            with sqlite3.connect(path) as connection:
                connection.execute(sql)

        async def count(table: str) -> int:
            with sqlite3.connect(path) as connection:
                return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

        yield f"sqlite://{path}", execute, count
        return
    await require_services()
    name = f"pictograph_migrations_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(ADMIN_DATABASE_URL, name)
    try:
        async def execute_pg(sql: str) -> None:
            connection = await asyncpg.connect(url)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        async def count_pg(table: str) -> int:
            connection = await asyncpg.connect(url)
            try:
                return await connection.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
            finally:
                await connection.close()

        yield url, execute_pg, count_pg
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_per_owner_keys_keep_every_row_and_refuse_a_second_post_of_an_upload(
    database: tuple[str, Execute, Count],
) -> None:
    url, execute, count = database
    await _migrate(url, BEFORE_PER_OWNER_KEYS)
    for statement in ROWS:
        await execute(statement)
    await _migrate(url)
    assert {table: await count(table) for table in TABLES} == TABLES
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await execute(SECOND_POST_OF_THE_UPLOAD)

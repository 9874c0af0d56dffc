"""Writes new migrations with Tortoise's autodetector (dialect-neutral operations)."""

from __future__ import annotations

from pathlib import Path

from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.writer import format_migration_name

from pictograph.db import tortoise_config


async def make_migrations(name: str | None) -> list[Path]:
    # Detection needs a schema to compare against only through the migration files,
    # so an in-memory database is enough.
    config = tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as context:
        await context.init(config=config)
        writers = await MigrationAutodetector(context.apps, config["apps"]).changes()
    paths = []
    for writer in writers:
        if name:
            number = int(writer.name.split("_", 1)[0])
            writer.name = format_migration_name(number, name)
        path = writer.write()
        _keep_snowflake_keys(path)
        paths.append(path)
    return paths


def _keep_snowflake_keys(path: Path) -> None:
    # Tortoise 1.1's writer drops `generated=False` from primary keys with a default,
    # which would make PostgreSQL give our snowflake ids a useless sequence.
    text = path.read_text()
    text = text.replace(
        "BigIntField(primary_key=True, default=new_id,",
        "BigIntField(primary_key=True, generated=False, default=new_id,",
    )
    path.write_text(text)

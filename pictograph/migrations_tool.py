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
    # Tortoise 1.1's writer drops `generated=False` from primary keys (it writes
    # `generated=True` when it is so), which would make PostgreSQL give our snowflake
    # ids, and the id-node numbers we choose ourselves, a useless sequence.
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(
        line.replace("primary_key=True", "primary_key=True, generated=False", 1)
        if "primary_key=True" in line and "generated=" not in line else line
        for line in lines
    ))

"""The embedded SQLite file opened by two processes at once (a server and `pictograph
seed`, or two apps in one test run): a transaction that reads and then writes never
fails because the other wrote in between; the other's write waits its turn."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from pictograph.db import open_database, using_database
from pictograph.outages import unavailable_service
from pictograph.settings import Settings


async def test_a_read_then_write_transaction_survives_another_connections_write(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, run_workers=False)
    # Two contexts, two connections to one file, as two processes have.
    ours, theirs = await open_database(settings), await open_database(settings)
    try:
        await ours.db().execute_script(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER);"
            "INSERT INTO counter VALUES (1, 0)")
        started = asyncio.Event()

        async def their_write() -> None:
            started.set()
            await theirs.db().execute_query("UPDATE counter SET value = value + 10")

        with using_database(ours):
            async with in_transaction() as transaction:
                _, rows = await transaction.execute_query("SELECT value FROM counter")
                # Their write is sent while our transaction is open, between our read
                # and our write (with a deferred BEGIN, ours then failed at once).
                with using_database(theirs):
                    theirs_done = asyncio.create_task(their_write())
                await started.wait()
                await asyncio.sleep(0.2)
                assert not theirs_done.done()  # waiting for our write lock
                await transaction.execute_query(
                    "UPDATE counter SET value = ?", [rows[0]["value"] + 1])
        await theirs_done

        # Neither write was lost: ours read 0 and wrote 1, theirs added 10 after it.
        _, rows = await theirs.db().execute_query("SELECT value FROM counter")
        assert rows[0]["value"] == 11
    finally:
        await ours.close_connections()
        await theirs.close_connections()


@asynccontextmanager
async def locked_by_another(
    tmp_path: Path, busy_timeout_ms: int
) -> AsyncIterator[tuple[TortoiseContext, sqlite3.Connection]]:
    """Our database (connected), and another process's connection to its file. A short
    busy timeout, so that waiting for the other's write lock ends within the test."""
    path = tmp_path / "locked.sqlite3"
    database = await open_database(Settings(
        data_dir=tmp_path, run_workers=False,
        database_url=f"sqlite://{path}?busy_timeout={busy_timeout_ms}"))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await database.db().execute_query("SELECT 1")
        yield database, other
    finally:
        other.close()
        await database.close_connections()


async def transact(database: TortoiseContext) -> None:
    with using_database(database):
        async with in_transaction() as transaction:
            await transaction.execute_query("SELECT 1")


async def test_a_transaction_that_cannot_begin_fails_as_an_outage_and_frees_the_client(
    tmp_path: Path,
) -> None:
    async with locked_by_another(tmp_path, 200) as (database, other):
        other.execute("BEGIN IMMEDIATE")  # another process writes, past the busy timeout
        with pytest.raises(Exception) as failed:
            await transact(database)
        assert unavailable_service(failed.value) == "database"  # a 503 to a client
        other.execute("COMMIT")
        # The client is free: its statements and transactions go on (before, its lock
        # stayed held and every statement waited for ever).
        await asyncio.wait_for(transact(database), 5)


async def test_a_transaction_cancelled_while_it_waits_to_begin_leaves_nothing_held(
    tmp_path: Path,
) -> None:
    async with locked_by_another(tmp_path, 2000) as (database, other):
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transact(database), 0.3)  # a request cancelled meanwhile
        other.execute("COMMIT")
        await asyncio.sleep(0.3)  # the BEGIN it had sent may still complete now
        # Nothing of the cancelled transaction holds the file: another process writes.
        other.execute("BEGIN IMMEDIATE")
        other.execute("COMMIT")
        await asyncio.wait_for(transact(database), 5)

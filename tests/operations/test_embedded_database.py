"""The embedded SQLite file opened by two processes at once (a server and `pictograph
seed`, or two apps in one test run): a transaction that reads and then writes never
fails because the other wrote in between; the other's write waits its turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tortoise.transactions import in_transaction

from pictograph.db import open_database, using_database
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

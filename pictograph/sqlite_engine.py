"""Tortoise's SQLite engine, with transactions that take the write lock when they begin.

The embedded database is one file that more than one connection may open: a
`pictograph seed` or `pictograph worker` beside a running server, or two apps in one
test process. Tortoise begins a transaction with a plain (deferred) BEGIN, and in WAL
mode a deferred transaction that has read and then writes fails at once with
"database is locked" when another connection committed a write in between: SQLite
cannot move its snapshot forward, and its busy timeout does not apply. Our
transactions read and then write (a follow checks the relation first), so they begin
IMMEDIATE instead: the write lock is taken up front, and another writer waits for it
within the busy timeout instead of failing.

Named as the engine in `pictograph.db.tortoise_config`; Tortoise imports it by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

from tortoise.backends.base.client import (
    NestedTransactionContext,
    TransactionalDBClient,
    TransactionContext,
)
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

# How long a statement waits for another connection's write lock before it fails as
# "database is locked" (an outage to the caller): Python's sqlite3 default, made explicit.
BUSY_TIMEOUT_MS = 5000


class ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise TransactionManagementError(error) from error

    def _in_transaction(self) -> TransactionContext:
        # A nested block is a savepoint in the outer transaction (as in Tortoise).
        return NestedTransactionContext(ImmediateTransaction(self))


class ImmediateTransactionContext(SqliteTransactionContext):
    """Tortoise's context, which leaves its lock (every statement of the client waits on
    it) held when BEGIN fails. A plain BEGIN never fails; BEGIN IMMEDIATE does, when
    another process holds the write lock past the busy timeout, and a request can be
    cancelled while it waits. So a failed or cancelled begin undoes itself here."""

    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        token = None
        try:
            await self.ensure_connection()
            token = get_connections().set(self.connection_name, self.connection)
            await self.connection.begin()
        except BaseException:
            if token is not None:
                get_connections().reset(token)
            cleanup = asyncio.ensure_future(self._abandon())
            with contextlib.suppress(BaseException):  # the begin's own error is the news
                await asyncio.shield(cleanup)  # cancelled again: it still runs to the end
            raise
        self.token = token
        return self.connection

    async def _abandon(self) -> None:
        try:
            # Queued behind the BEGIN in aiosqlite's thread: a cancelled BEGIN may still
            # take the write lock there, and this gives it back (a no-op otherwise).
            if self.connection._connection is not None:
                await self.connection._connection.rollback()
        finally:
            self._trxlock.release()


class SqliteImmediateClient(SqliteClient):
    def __init__(self, file_path: str, **kwargs: Any) -> None:
        busy_timeout = kwargs.pop("busy_timeout", BUSY_TIMEOUT_MS)
        super().__init__(file_path, **kwargs)
        # First: the pragmas after it (journal_mode) may wait for another's lock too.
        self.pragmas = {"busy_timeout": busy_timeout, **self.pragmas}

    def _in_transaction(self) -> TransactionContext:
        return ImmediateTransactionContext(ImmediateTransaction(self), self._lock)


client_class = SqliteImmediateClient

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

import sqlite3
from typing import Any

from tortoise.backends.base.client import NestedTransactionContext, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
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


class SqliteImmediateClient(SqliteClient):
    def __init__(self, file_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("busy_timeout", BUSY_TIMEOUT_MS)
        super().__init__(file_path, **kwargs)

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransaction(self), self._lock)


client_class = SqliteImmediateClient

"""Counting SQL queries, by listening to Tortoise's query log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _QueryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Created connection", "Closed connection")):
            return
        if '"id_node_leases"' in message:
            return  # the process's id-node heartbeat, every few seconds, not the request's
        self.queries.append(message)


@contextmanager
def count_queries() -> Iterator[list[str]]:
    """Yields the list of SQL statements run inside the block (filled as they run)."""
    logger = logging.getLogger("tortoise.db_client")
    counter = _QueryCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter.queries
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)

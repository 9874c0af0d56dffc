"""Which errors count as a service being away: what every path answers as "temporarily
unavailable" (and logs in one line) instead of a 500 and a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pictograph.ids import NoIdNode
from pictograph.outages import as_unavailable, unavailable_service


def test_a_sqlite_database_locked_by_another_process_is_a_database_outage(
    tmp_path: Path,
) -> None:
    """`pictograph seed` holds the embedded database's write lock for its whole run; a
    `serve` beside it (its id-node heartbeat, its writes) must wait, not crash."""
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0)
    try:
        other.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as error:
        locked = error
    finally:
        other.close()
        holder.close()
    assert unavailable_service(locked) == "database"
    assert unavailable_service(sqlite3.OperationalError("no such table: t")) is None


def test_no_id_node_is_a_database_outage() -> None:
    assert unavailable_service(NoIdNode()) == "database"
    unavailable = as_unavailable(NoIdNode())
    assert unavailable is not None and "temporarily unavailable" in unavailable.message

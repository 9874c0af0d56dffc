"""Reading the follow graph from the database, the source of truth."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.expressions import Q

from pictograph.models import Block, Follow, FollowState
from pictograph.records import GraphSnapshot, PairState


def _placeholders(dialect: str, count: int, start: int) -> str:
    if dialect == "postgres":
        return ", ".join(f"${i}" for i in range(start, start + count))
    return ", ".join("?" * count)


async def load_snapshots(user_ids: Sequence[int]) -> dict[int, GraphSnapshot]:
    """Whole graphs for several users in one query, however many users."""
    snapshots = {user_id: GraphSnapshot(user_id) for user_id in user_ids}
    ids = list(snapshots)
    connection = Follow._meta.db
    dialect = connection.capabilities.dialect
    n = len(ids)
    slots = [_placeholders(dialect, n, 1 + i * n) for i in range(5)]
    # One statement, so one consistent snapshot: the rows are exactly those of the
    # changes numbered up to each user's graph_seq (the floor; see cache/graph.py).
    # Also one round trip: the cold path of a page counts its queries.
    sql = (
        "SELECT 0, id, follower_id, followee_id, state FROM follows"  # noqa: S608 - placeholders only
        f" WHERE follower_id IN ({slots[0]}) OR followee_id IN ({slots[1]})"
        " UNION ALL SELECT 1, id, blocker_id, blocked_id, '' FROM blocks"
        f" WHERE blocker_id IN ({slots[2]}) OR blocked_id IN ({slots[3]})"
        f" UNION ALL SELECT 2, graph_seq, id, 0, '' FROM users WHERE id IN ({slots[4]})"
    )
    _, rows = await connection.execute_query(sql, ids * 5)
    for kind, row_id, source, target, state in (tuple(row) for row in rows):
        if kind == 2:
            snapshots[source].floor = row_id
            continue
        if kind == 1:
            if source in snapshots:
                snapshots[source].blocking.add(target)
            if target in snapshots:
                snapshots[target].blocked_by.add(source)
            continue
        accepted = state == FollowState.ACCEPTED
        if source in snapshots:
            part = snapshots[source].following if accepted else snapshots[source].requested
            part[target] = row_id
        if target in snapshots:
            part = snapshots[target].followers if accepted else snapshots[target].requests
            part[source] = row_id
    return snapshots


async def load_pair(a: int, b: int) -> PairState:
    """Everything between two users (inside the caller's transaction, if any)."""
    follows = await Follow.filter(
        Q(follower_id=a, followee_id=b) | Q(follower_id=b, followee_id=a)
    ).values_list("id", "follower_id", "state")
    blocks = await Block.filter(
        Q(blocker_id=a, blocked_id=b) | Q(blocker_id=b, blocked_id=a)
    ).values_list("blocker_id", flat=True)
    state: dict[str, int | bool | None] = {}
    for follow_id, follower, follow_state in follows:
        direction = "a_{}_b" if follower == a else "b_{}_a"
        verb = "follows" if follow_state == FollowState.ACCEPTED else "requested"
        state[direction.format(verb)] = follow_id
    return PairState(
        a=a,
        b=b,
        a_blocks_b=a in blocks,
        b_blocks_a=b in blocks,
        **state,  # type: ignore[arg-type]
    )

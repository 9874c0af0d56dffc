"""The rows a graph change holds and writes besides the follows: user locks, each user's
graph sequence number, and the follower counts."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.expressions import F

from pictograph.models import Follow, FollowState, User


async def lock_users(user_ids: Sequence[int]) -> dict[int, bool]:
    """Row locks on the users, taken in one statement in id order so that two changes
    never deadlock. Returns each user's is_private as of the lock.

    (Whole rows, not values_list: Tortoise drops FOR UPDATE from a values query.)"""
    rows = await User.filter(id__in=sorted(set(user_ids))).select_for_update().order_by("id")
    return {row.id: row.is_private for row in rows}


async def next_sequences(user_ids: Sequence[int]) -> dict[int, int]:
    """Numbers this change in each user's graph order; call while holding their locks."""
    await User.filter(id__in=list(user_ids)).update(graph_seq=F("graph_seq") + 1)
    return dict(await User.filter(id__in=list(user_ids)).values_list("id", "graph_seq"))


def is_lock_conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure that PostgreSQL resolved by aborting us."""
    while error is not None:
        if type(error).__name__ in ("DeadlockDetectedError", "SerializationError"):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


async def requesters(owner: int) -> list[int]:
    return list(await Follow.filter(
        followee_id=owner, state=FollowState.REQUESTED
    ).values_list("follower_id", flat=True))


async def adjust_counts(follower: int, followee: int, delta: int) -> None:
    await User.filter(id=follower).update(following_count=F("following_count") + delta)
    await User.filter(id=followee).update(follower_count=F("follower_count") + delta)


async def accept_requests(owner: int, askers: Sequence[int]) -> None:
    """The askers' requests to the owner become follows (counts too)."""
    await Follow.filter(followee_id=owner, state=FollowState.REQUESTED,
                        follower_id__in=list(askers)).update(state=FollowState.ACCEPTED)
    await User.filter(id__in=list(askers)).update(following_count=F("following_count") + 1)
    await User.filter(id=owner).update(follower_count=F("follower_count") + len(askers))

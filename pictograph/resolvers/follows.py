"""Following, requests, removing followers, blocking, and the lists they make."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pictograph import visibility
from pictograph.cache import keys
from pictograph.context import Context
from pictograph.errors import BadUserInput, NotFound
from pictograph.graph.changes import GraphChanges
from pictograph.records import FollowStatus, UserRecord
from pictograph.visibility import can_view_posts, profile_visible

# An unbound GraphChanges method: (changes, viewer, other) -> the viewer's new status.
GraphChange = Callable[[GraphChanges, int, int], Awaitable[FollowStatus]]
# The mutations by name, each one change of the graph by the viewer on another user.
CHANGES: dict[str, GraphChange] = {
    "follow": GraphChanges.follow,
    "unfollow": GraphChanges.unfollow,
    "approve_follow_request": GraphChanges.approve_request,
    "reject_follow_request": GraphChanges.reject_request,
    "remove_follower": GraphChanges.remove_follower,
    "block": GraphChanges.block,
    "unblock": GraphChanges.unblock,
}


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[tuple[UserRecord, int]]  # (user, position for the cursor)
    has_next: bool


async def change_relation(
    context: Context, target_id: int | None, name: str
) -> tuple[UserRecord, FollowStatus]:
    """Runs one graph change (CHANGES[name]) by the viewer on the target; returns the
    target as it is now, and the viewer's status toward them."""
    change = CHANGES[name]
    viewer_id = await context.require_viewer_id()
    await context.resources.rate_limits.mutation(viewer_id)
    if target_id is None or await context.loaders.users.load(target_id) is None:
        raise NotFound("no such user")
    if target_id == viewer_id:
        raise BadUserInput("that is you", field="userId")
    if (await context.graph.relation(viewer_id, target_id)).blocked_by:
        # Someone who blocked you does not exist for you: not even the payload shows them.
        raise NotFound("no such user")
    status = await change(context.graph_changes, viewer_id, target_id)
    context.forget_reads()  # counts and relations just changed
    record = await context.loaders.users.load(target_id)
    if record is None:
        raise NotFound("no such user")
    return record, status


def follows_shown(context: Context, user: UserRecord) -> None:
    """The answer shows the user's follower or following counts or lists: a cached one
    depends on the user's follows epoch, read when the user was (cache/responses.py)."""
    if context.recording is not None:
        context.recording.use(keys.user_follows_shown(user.id))


def follower_count(context: Context, user: UserRecord) -> int:
    follows_shown(context, user)
    return user.follower_count


def following_count(context: Context, user: UserRecord) -> int:
    follows_shown(context, user)
    return user.following_count


async def user_list(
    context: Context, owner: UserRecord, part: str, first: int, before: int | None
) -> UserPage:
    """One page of a user's followers or following (or the viewer's follow requests)."""
    follows_shown(context, owner)
    viewer_id = await context.viewer_id()
    # Both graphs in one batch, so a cold page costs a fixed number of queries.
    await context.graph.ensure_loaded([owner.id] if viewer_id is None else [owner.id, viewer_id])
    if not await can_view_posts(context.graph, viewer_id, owner):
        return UserPage([], False)
    rows = await context.graph.page(owner.id, part, before, first + 1)
    shown = rows[:first]
    records = await context.loaders.users.load_many([user_id for user_id, _ in shown])
    relations = await context.graph.relations(viewer_id, [u for u, _ in shown]) if (
        viewer_id is not None and shown
    ) else {}
    users = [
        (record, position)
        for record, (user_id, position) in zip(records, shown, strict=True)
        if record is not None
        # People who blocked the viewer do not appear in lists the viewer reads.
        and (viewer_id is None or profile_visible(viewer_id, user_id, relations[user_id]))
    ]
    return UserPage(users, len(rows) > first)


async def follow_requests(context: Context, first: int, before: int | None) -> UserPage:
    viewer_id = await context.require_viewer_id()
    viewer = await context.loaders.users.load(viewer_id)
    assert viewer is not None
    return await user_list(context, viewer, "requests", first, before)


async def viewer_follow_status(context: Context, user: UserRecord) -> FollowStatus:
    return await visibility.viewer_follow_status(context.graph, await context.viewer_id(),
                                                 user.id)


async def follows_viewer(context: Context, user: UserRecord) -> bool:
    viewer_id = await context.viewer_id()
    if viewer_id is None:
        return False
    return visibility.follows_viewer(viewer_id, user.id,
                                     await context.graph.relation(viewer_id, user.id))

"""The one authority on who may see what. Every resolver, the media endpoint and the
live-update path ask these functions, and nothing else re-derives the rules.

The rules (../shared/contract/schema.graphql):
- A user always sees their own profile, posts and photos.
- Profile basics are visible to everyone except a user the owner has blocked.
- Posts of a public account are visible to everyone not blocked (either way);
  of a private account, only to its accepted followers.
- Photos are visible only to the owner and the owner's accepted followers,
  whether the account is public or private.
"""

from __future__ import annotations

from typing import Protocol

from pictograph.records import FollowStatus, Relation, UserRecord


class RelationSource(Protocol):
    async def relation(self, viewer_id: int | None, other_id: int) -> Relation: ...


def follow_status(viewer_id: int | None, owner_id: int, relation: Relation) -> FollowStatus:
    if viewer_id == owner_id:
        return FollowStatus.SELF
    if relation.blocked:
        return FollowStatus.BLOCKED
    if relation.following:
        return FollowStatus.FOLLOWING
    if relation.requested:
        return FollowStatus.REQUESTED
    return FollowStatus.NONE


def profile_visible(viewer_id: int | None, owner_id: int, relation: Relation) -> bool:
    return viewer_id == owner_id or not relation.blocked_by


def posts_visible(viewer_id: int | None, owner: UserRecord, relation: Relation) -> bool:
    if viewer_id == owner.id:
        return True
    if relation.blocked:
        return False
    return not owner.is_private or relation.following


def media_visible(viewer_id: int | None, owner_id: int, relation: Relation) -> bool:
    if viewer_id is not None and viewer_id == owner_id:
        return True
    return viewer_id is not None and relation.following and not relation.blocked


def follows_viewer(viewer_id: int, owner_id: int, relation: Relation) -> bool:
    """Whether the owner follows the viewer, as the viewer is told (not across a block)."""
    return viewer_id != owner_id and relation.followed_by and not relation.blocked


def feed_visible(viewer_id: int, author: UserRecord, relation: Relation | None) -> bool:
    """The home feed holds the viewer's own posts and those of accounts they follow
    (and may still see): checked against the live graph on every read."""
    if viewer_id == author.id:
        return True
    return relation is not None and relation.following and posts_visible(
        viewer_id, author, relation
    )


async def can_view_profile(graph: RelationSource, viewer_id: int | None, owner_id: int) -> bool:
    return profile_visible(viewer_id, owner_id, await graph.relation(viewer_id, owner_id))


async def can_view_posts(graph: RelationSource, viewer_id: int | None, owner: UserRecord) -> bool:
    """Posts, and the owner's follower and following lists, which reveal as much."""
    return posts_visible(viewer_id, owner, await graph.relation(viewer_id, owner.id))


async def can_view_media(graph: RelationSource, viewer_id: int | None, owner_id: int) -> bool:
    return media_visible(viewer_id, owner_id, await graph.relation(viewer_id, owner_id))


async def viewer_follow_status(
    graph: RelationSource, viewer_id: int | None, owner_id: int
) -> FollowStatus:
    return follow_status(viewer_id, owner_id, await graph.relation(viewer_id, owner_id))

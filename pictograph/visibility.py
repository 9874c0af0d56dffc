"""The one gate on who may see what. Every resolver, GET /media, the home feed and live
updates ask it; nothing else decides whether a post, a photo or a profile is shown, a
post's status included.

The rules (../shared/contract/schema.graphql):
- A user always sees their own profile and posts, whatever the posts' status.
- Others see a post only once it is READY (not while PROCESSING, never when FAILED).
- Profile basics are visible to everyone except a user the owner has blocked.
- Posts of a public account are visible to everyone not blocked (either way);
  of a private account, only to its accepted followers.
- Photos (of READY posts) are visible only to the owner and the owner's accepted
  followers, whether the account is public or private.
- The home feed holds the viewer's own READY posts and those of the accounts they follow
  (and may still see).
"""

from __future__ import annotations

from typing import Protocol

from pictograph.models import PostStatus
from pictograph.records import FollowStatus, PostRecord, Relation, UserRecord


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


def follows_viewer(viewer_id: int, owner_id: int, relation: Relation) -> bool:
    """Whether the owner follows the viewer, as the viewer is told (not across a block)."""
    return viewer_id != owner_id and relation.followed_by and not relation.blocked


def profile_visible(viewer_id: int | None, owner_id: int, relation: Relation) -> bool:
    return viewer_id == owner_id or not relation.blocked_by


def posts_visible(viewer_id: int | None, owner: UserRecord, relation: Relation) -> bool:
    """The owner's posts as a whole (and their follower and following lists, which reveal
    as much); each post is shown only as post_visible says."""
    if viewer_id == owner.id:
        return True
    if relation.blocked:
        return False
    return not owner.is_private or relation.following


def post_visible(viewer_id: int | None, post: PostRecord, author: UserRecord,
                 relation: Relation) -> bool:
    if viewer_id == post.author_id:
        return True
    return post.status == PostStatus.READY and posts_visible(viewer_id, author, relation)


def photo_visible(viewer_id: int | None, post: PostRecord, relation: Relation) -> bool:
    """Whether the viewer may see the post's photo (which exists once the post is READY)."""
    if viewer_id is None or post.status != PostStatus.READY:
        return False
    return viewer_id == post.author_id or (relation.following and not relation.blocked)


def in_feed(viewer_id: int, post: PostRecord, author: UserRecord,
            relation: Relation | None) -> bool:
    """Whether the post belongs in the viewer's home feed, against the live graph."""
    if post.status != PostStatus.READY:
        return False
    if viewer_id == author.id:
        return True
    return relation is not None and relation.following and posts_visible(
        viewer_id, author, relation
    )


async def can_view_profile(graph: RelationSource, viewer_id: int | None, owner_id: int) -> bool:
    return profile_visible(viewer_id, owner_id, await graph.relation(viewer_id, owner_id))


async def can_view_posts(graph: RelationSource, viewer_id: int | None, owner: UserRecord) -> bool:
    return posts_visible(viewer_id, owner, await graph.relation(viewer_id, owner.id))


async def can_view_post(graph: RelationSource, viewer_id: int | None, post: PostRecord,
                        author: UserRecord) -> bool:
    if viewer_id == post.author_id:
        return True
    return post_visible(viewer_id, post, author, await graph.relation(viewer_id, author.id))


async def can_view_photo(graph: RelationSource, viewer_id: int | None,
                         post: PostRecord) -> bool:
    if viewer_id is None or post.status != PostStatus.READY:
        return False
    return photo_visible(viewer_id, post, await graph.relation(viewer_id, post.author_id))


async def viewer_follow_status(
    graph: RelationSource, viewer_id: int | None, owner_id: int
) -> FollowStatus:
    return follow_status(viewer_id, owner_id, await graph.relation(viewer_id, owner_id))

"""Uploads, posts and their photos, each shown only as visibility.py allows."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

from pictograph.context import Context
from pictograph.errors import NotFound
from pictograph.posts import lifecycle, store
from pictograph.posts.uploads import Ticket, create_upload
from pictograph.records import MediaSize, PostRecord, UserRecord, VariantRecord
from pictograph.storage.signing import media_url
from pictograph.visibility import can_view_photo, can_view_post, can_view_posts, photo_visible


@dataclass(frozen=True, slots=True)
class MintedMedia:
    url: str
    expires_at: datetime
    width: int
    height: int
    content_type: str


async def new_upload(context: Context, content_type: str, byte_size: int) -> Ticket:
    viewer_id = await context.require_viewer_id()
    await context.resources.rate_limits.mutation(viewer_id)
    await context.resources.rate_limits.upload(viewer_id)
    return await create_upload(context.resources, viewer_id, content_type, byte_size)


async def new_post(context: Context, upload_id: int | None, caption: str | None) -> PostRecord:
    viewer_id = await context.require_viewer_id()
    await context.resources.rate_limits.mutation(viewer_id)
    post_id = await lifecycle.create_post(context.resources, viewer_id, upload_id, caption)
    post = await context.loaders.posts.load(post_id)
    assert post is not None
    return post


async def remove_post(context: Context, post_id: int | None) -> bool:
    viewer_id = await context.require_viewer_id()
    await context.resources.rate_limits.mutation(viewer_id)
    post = await visible_post(context, post_id) if post_id is not None else None
    if post is None:
        # Someone else's hidden post is as absent as one that never existed.
        raise NotFound("no such post")
    await lifecycle.delete_post(context.resources, viewer_id, post.id)
    context.forget_reads()
    return True


async def visible_post(context: Context, post_id: int) -> PostRecord | None:
    """The post, if the viewer may see it (visibility.post_visible)."""
    post = await context.loaders.posts.load(post_id)
    if post is None:
        return None
    author = await context.loaders.users.load(post.author_id)
    if author is None:
        return None
    viewer_id = await context.viewer_id()
    return post if await can_view_post(context.graph, viewer_id, post, author) else None


def media_of(
    context: Context, post: PostRecord, size: MediaSize
) -> MintedMedia | Awaitable[MintedMedia | None] | None:
    """The photo signed for this viewer, or None. Decided at once, with no await, when
    the request has already read what the check needs (a feed or profile page reads the
    viewer's relation to every author on it); otherwise an awaitable that reads it."""
    checked, viewer_id = context.viewer_id_read
    if checked:
        relation = context.graph.relation_read(viewer_id, post.author_id)
        if relation is not None:
            if not photo_visible(viewer_id, post, relation):
                return None
            assert viewer_id is not None
            return _minted(context, viewer_id, post, size)
    return _media_of_after_reading(context, post, size)


async def _media_of_after_reading(
    context: Context, post: PostRecord, size: MediaSize
) -> MintedMedia | None:
    viewer_id = await context.viewer_id()
    variant = await photo(context, viewer_id, post, size)
    if variant is None:
        return None
    assert viewer_id is not None
    return _minted(context, viewer_id, post, size)


async def photo(context: Context, viewer_id: int | None, post: PostRecord,
                size: MediaSize) -> VariantRecord | None:
    """The stored photo the viewer may see: the one check behind the media field and
    behind GET /media, which asks again for every URL minted before."""
    if not await can_view_photo(context.graph, viewer_id, post):
        return None
    return post.variants.get(size)


def _minted(
    context: Context, viewer_id: int, post: PostRecord, size: MediaSize
) -> MintedMedia | None:
    variant = post.variants.get(size)
    if variant is None:
        return None
    settings = context.resources.settings
    expires = int(time.time()) + settings.media_url_ttl
    return MintedMedia(
        url=media_url(
            settings.public_base_url, context.resources.secret_key, viewer_id, post.id, size,
            expires,
        ),
        expires_at=datetime.fromtimestamp(expires, UTC),
        width=variant.width,
        height=variant.height,
        content_type=variant.content_type,
    )


async def failure_reason(context: Context, post: PostRecord) -> str | None:
    return post.failure_reason if await context.viewer_id() == post.author_id else None


async def posts_of(
    context: Context, owner: UserRecord, first: int, before: int | None
) -> tuple[list[PostRecord], bool]:
    """One page of a user's posts (all of them, for the author), newest first."""
    viewer_id = await context.viewer_id()
    if not await can_view_posts(context.graph, viewer_id, owner):
        return [], False
    ids = await store.author_post_ids(owner.id, viewer_id == owner.id, before, first + 1)
    posts = await context.loaders.posts.load_many(ids[:first])
    return [post for post in posts if post is not None], len(ids) > first

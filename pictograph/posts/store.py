"""Reading posts from the database: which are shown (READY) is decided here and in
visibility.py only."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from pictograph.models import Post, PostStatus
from pictograph.records import PostRecord, VariantRecord

_VARIANT_FIELDS = ("object_key", "width", "height", "content_type", "byte_size", "etag")


async def load_posts(post_ids: Sequence[int]) -> dict[int, PostRecord]:
    """Posts with their variants in one query (a LEFT JOIN: a row per variant)."""
    rows = await Post.filter(id__in=list(post_ids)).values(
        "id", "author_id", "caption", "status", "failure_reason", "created_at",
        "variants__size", *(f"variants__{name}" for name in _VARIANT_FIELDS),
    )
    posts: dict[int, PostRecord] = {}
    for row in rows:
        post = posts.get(row["id"])
        if post is None:
            post = posts[row["id"]] = PostRecord(
                id=row["id"],
                author_id=row["author_id"],
                caption=row["caption"],
                status=str(row["status"]),
                failure_reason=row["failure_reason"],
                created_at=row["created_at"],
                variants={},
            )
        if row["variants__size"] is not None:
            post.variants[row["variants__size"]] = VariantRecord(
                **{name: row[f"variants__{name}"] for name in _VARIANT_FIELDS}
            )
    return posts


async def author_post_ids(
    author_id: int, include_unfinished: bool, before: int | None, limit: int
) -> list[int]:
    """A user's posts, newest first: READY ones, or all of them for the author."""
    query = Post.filter(author_id=author_id)
    if not include_unfinished:
        query = query.filter(status=PostStatus.READY)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit).values_list("id", flat=True)


# Authors per query when reading several authors' posts: no statement carries thousands
# of parameters.
AUTHORS_PER_QUERY = 500


def cacheable(post: PostRecord) -> bool:
    """Whether a post's record may be cached: a PROCESSING post changes soon."""
    return post.status != PostStatus.PROCESSING


async def is_shown(post_id: int) -> bool:
    """Whether the post exists and is READY, as the database says now."""
    return await Post.exists(id=post_id, status=PostStatus.READY)


async def shown_post_ids(author_ids: Sequence[int], before: int | None,
                         limit: int) -> list[int]:
    return [post for post, _ in await shown_posts(author_ids, before, limit)]


async def shown_posts(author_ids: Sequence[int], before: int | None,
                      limit: int) -> list[tuple[int, int]]:
    """The newest READY posts of these authors older than `before`, (post, author) newest
    first, read in chunks of authors whose newest merge into one list."""
    chunks = []
    for start in range(0, len(author_ids), AUTHORS_PER_QUERY):
        query = Post.filter(author_id__in=list(author_ids[start:start + AUTHORS_PER_QUERY]),
                            status=PostStatus.READY)
        if before is not None:
            query = query.filter(id__lt=before)
        chunks.append(await query.order_by("-id").limit(limit).values_list("id", "author_id"))
    return list(heapq.merge(*chunks, reverse=True))[:limit]

"""Reading posts from the database."""

from __future__ import annotations

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

"""Reading posts from the database."""

from __future__ import annotations

from collections.abc import Sequence

from pictograph.models import MediaVariant, Post, PostStatus
from pictograph.records import PostRecord, VariantRecord


async def load_posts(post_ids: Sequence[int]) -> dict[int, PostRecord]:
    """Posts with their variants, in two queries however many posts."""
    rows = await Post.filter(id__in=list(post_ids))
    variants: dict[int, dict[str, VariantRecord]] = {row.id: {} for row in rows}
    if rows:
        for variant in await MediaVariant.filter(post_id__in=list(variants)):
            variants[variant.post_id][variant.size] = VariantRecord(  # type: ignore[attr-defined]
                object_key=variant.object_key,
                width=variant.width,
                height=variant.height,
                content_type=variant.content_type,
                byte_size=variant.byte_size,
                etag=variant.etag,
            )
    return {
        row.id: PostRecord(
            id=row.id,
            author_id=row.author_id,  # type: ignore[attr-defined]
            caption=row.caption,
            status=str(row.status),
            failure_reason=row.failure_reason,
            created_at=row.created_at,
            variants=variants[row.id],
        )
        for row in rows
    }


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

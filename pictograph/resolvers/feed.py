"""The viewer's home feed."""

from __future__ import annotations

from pictograph.context import Context
from pictograph.records import PostRecord


async def home_feed(
    context: Context, first: int, before: int | None
) -> tuple[list[PostRecord], bool]:
    viewer_id = await context.require_viewer_id()
    page = await context.feed.page(
        viewer_id,
        context.graph,
        context.loaders.posts.load_many,
        context.loaders.users.load_many,
        first,
        before,
    )
    return page.posts, page.has_next

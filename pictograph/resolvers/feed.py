"""The viewer's home feed."""

from __future__ import annotations

from pictograph.context import Context
from pictograph.feed.policy import FeedPage


async def home_feed(context: Context, first: int, before: int | None) -> FeedPage:
    viewer_id = await context.require_viewer_id()
    page = await context.feed.page(
        viewer_id,
        context.graph,
        context.loaders.posts.load_many,
        context.loaders.users.load_many,
        first,
        before,
        context.recording,
    )
    return page

"""The viewer's home feed."""

from __future__ import annotations

from pictograph.cache.feeds import FeedCache
from pictograph.context import Context
from pictograph.feed.policy import FeedPage


async def home_feed(context: Context, first: int, before: int | None) -> FeedPage:
    page_read = None
    if before is None:  # the first page: its cache is read with the token, at once
        viewer_id, page_read = await context.require_viewer_id_reading(FeedCache.page_keys)
    else:
        viewer_id = await context.require_viewer_id()
    page = await context.feed.page(
        viewer_id,
        context.graph,
        context.loaders.posts.load_many,
        context.loaders.users.load_many,
        first,
        before,
        context.recording,
        page_read,
    )
    return page

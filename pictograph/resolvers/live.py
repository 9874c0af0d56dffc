"""Live feed updates for one viewer: what enters and leaves their home feed.

Every message is judged here, against the live follow graph, before the client sees
it, so a message published before an unfollow and delivered after it shows nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pictograph.accounts.sessions import hash_token, resolve_token
from pictograph.cache import keys
from pictograph.cache.pubsub import RESYNC, Listener
from pictograph.checkpoints import checkpoint
from pictograph.context import Context
from pictograph.errors import Unauthenticated
from pictograph.live import publish as live
from pictograph.records import PostRecord
from pictograph.visibility import in_feed

REMOVED_ON_UNFOLLOW = 50  # that many of the author's newest posts are said to leave
SAID_REMEMBERED = 1000  # posts a subscription remembers having announced


class RecentlySaid:
    """The last `size` post ids a subscription announced, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: dict[int, None] = {}

    def __contains__(self, post_id: int) -> bool:
        return post_id in self._ids

    def add(self, post_id: int) -> None:
        self._ids[post_id] = None
        if len(self._ids) > self.size:
            del self._ids[next(iter(self._ids))]

    def discard(self, post_id: int) -> None:
        self._ids.pop(post_id, None)


@dataclass(frozen=True, slots=True)
class FeedChange:
    kind: str  # "POST_ADDED" or "POST_REMOVED"
    post_id: int
    post: PostRecord | None


async def feed_updates(context: Context) -> AsyncIterator[FeedChange]:
    token = context.token
    if token is None:
        await context.require_viewer_id()  # raises: sign in first
    assert token is not None
    async with context.resources.live.listener() as listener:
        # Listening (confirmed by Redis) before the token is checked: a logOut that lands
        # after the check is heard, however the two interleave.
        await listener.listen_to([keys.live_token(hash_token(token))])
        viewer_id = await context.require_viewer_id()
        await checkpoint("feed_updates.signed_in")
        await listener.listen_to([keys.live_viewer(viewer_id)])
        await listener.listen_to(await _celebrity_channels(context, viewer_id))
        # A post announced twice (an event published again after a crash, or a post that
        # reached the viewer both by fan-out and by its author's channel) is said once.
        said = RecentlySaid(SAID_REMEMBERED)
        while True:
            message = await listener.get()
            # Each message is judged afresh: nothing read for an earlier one is reused.
            context.forget_reads()
            kind = message.get("kind")
            if kind == live.REVOKED:
                raise Unauthenticated("the token was revoked")
            if kind == live.POST_ADDED:
                post_id = int(message["post_id"])
                if post_id in said:
                    continue
                post = await _visible_post(context, viewer_id, post_id)
                if post is not None:
                    said.add(post.id)
                    yield FeedChange("POST_ADDED", post.id, post)
            elif kind == live.POST_REMOVED:
                said.discard(int(message["post_id"]))
                yield FeedChange("POST_REMOVED", int(message["post_id"]), None)
            elif kind in (live.AUTHOR_GONE, live.GRAPH_CHANGED, RESYNC):
                if kind == RESYNC and await resolve_token(context.redis, token) is None:
                    raise Unauthenticated("the token is no longer valid")
                await _follow_celebrities(context, viewer_id, listener)
                if kind == live.AUTHOR_GONE:
                    async for change in _author_gone(context, viewer_id,
                                                     int(message["author_id"])):
                        yield change


async def _follow_celebrities(context: Context, viewer_id: int, listener: Listener) -> None:
    """Listens to the celebrities the viewer follows now, and to no others."""
    fresh = await _celebrity_channels(context, viewer_id)
    await listener.stop_listening_to(
        [c for c in listener.channels if c.startswith("live:author:") and c not in fresh])
    await listener.listen_to(fresh)


async def _author_gone(
    context: Context, viewer_id: int, author_id: int
) -> AsyncIterator[FeedChange]:
    """The author's recent posts leave the feed, unless the viewer follows them again by
    now (this message is only sent to viewers who were following)."""
    if (await context.graph.relation(viewer_id, author_id)).following:
        return
    for post_id in await context.feed.recent_post_ids(author_id, REMOVED_ON_UNFOLLOW):
        yield FeedChange("POST_REMOVED", post_id, None)


async def _celebrity_channels(context: Context, viewer_id: int) -> list[str]:
    followed = await context.feed.followed_celebrities(viewer_id, context.graph)
    return [keys.live_author(author_id) for author_id in followed]


async def _visible_post(context: Context, viewer_id: int, post_id: int) -> PostRecord | None:
    post = await context.loaders.posts.load(post_id)
    if post is None:
        return None
    author = await context.loaders.users.load(post.author_id)
    if author is None:
        return None
    relation = (None if author.id == viewer_id
                else await context.graph.relation(viewer_id, author.id))
    return post if in_feed(viewer_id, post, author, relation) else None

"""Live feed updates for one viewer: what enters and leaves their home feed.

Every message is judged here, against the live follow graph, before the client sees
it, so a message published before an unfollow and delivered after it shows nothing.

Messages published while the process's pub/sub link was down are lost; the hub then says
RESYNC, and the subscription makes up for them: what it announced and the viewer may no
longer see is taken back (POST_REMOVED), and what entered the feed since it last heard
anything is announced (POST_ADDED), both judged by the same gate as a live message.

A post's POST_ADDED reaches every subscribed follower on this process at once. What is
the same for all of them, the post and its author, is read once per process (the hub's
`shared`, for at most SHARE_SECONDS, and forgotten when the post's POST_REMOVED is taken:
a subscription that heard of the deletion reads the post afresh). Whether each viewer may
see it is still asked of the gate per viewer, against their own relation to the author."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from redis.asyncio import Redis
from strawberry.dataloader import DataLoader

from pictograph.accounts.sessions import hash_token, resolve_token
from pictograph.cache import keys
from pictograph.cache.graph import GraphCache
from pictograph.cache.pubsub import RESYNC, Listener
from pictograph.checkpoints import checkpoint
from pictograph.context import Context
from pictograph.errors import Unauthenticated
from pictograph.feed.policy import HomeFeed
from pictograph.graph.reader import FollowGraph
from pictograph.ids import first_id_at
from pictograph.live import publish as live
from pictograph.loaders import Loaders
from pictograph.records import PostRecord, Relation, UserRecord
from pictograph.resources import Resources
from pictograph.visibility import in_feed

REMOVED_ON_UNFOLLOW = 50  # that many of the author's newest posts are said to leave
SAID_REMEMBERED = 1000  # posts a subscription remembers having announced
# After a RESYNC, the newest posts of the feed looked at for those that entered it while
# messages were lost: far more than reach one viewer's feed during a Redis blip.
GAP_FILL = 100
# A post's id is minted when it is created, and it enters feeds when its photo is ready:
# up to twice PICTOGRAPH_MEDIA_CPU_SECONDS plus 5 s later (21 s by default), and a
# process's clock may be 5 s off another's. Posts created this long before the
# subscription last heard from Redis are looked at again after a RESYNC.
LATE_READY_MS = 60_000


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

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._ids))


class Heard:
    """Which posts may have entered the feed unannounced, should messages be lost."""

    def __init__(self) -> None:
        now = _now_ms()
        # Posts the feed held when the subscription began are the client's own read.
        self.since = first_id_at(now)
        self.at_ms = now  # when the last message was taken: the link worked until then

    def heard(self) -> None:
        self.at_ms = _now_ms()

    def floor(self) -> int:
        """Posts above this id may have entered the feed since the link last worked."""
        return max(self.since, first_id_at(self.at_ms - LATE_READY_MS))


@dataclass(frozen=True, slots=True)
class FeedChange:
    kind: str  # "POST_ADDED" or "POST_REMOVED"
    post_id: int
    post: PostRecord | None


async def feed_updates(context: Context, with_post: bool = True) -> AsyncIterator[FeedChange]:
    """`with_post`: whether the client reads the post's fields (else only its id)."""
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
        heard = Heard()
        while True:
            message = await listener.get()
            # Each message is judged afresh: nothing read for an earlier one is reused.
            context.forget_reads()
            kind = message.get("kind")
            if kind != RESYNC:
                heard.heard()
            if kind == live.REVOKED:
                raise Unauthenticated("the token was revoked")
            if kind == live.POST_ADDED:
                post_id = int(message["post_id"])
                if post_id in said:
                    continue
                post = await _visible_announced(context, viewer_id, post_id, with_post)
                if post is not None:
                    said.add(post.id)
                    yield FeedChange("POST_ADDED", post.id, post)
            elif kind == live.POST_REMOVED:
                context.resources.live.forget(_shared_post(int(message["post_id"])))
                said.discard(int(message["post_id"]))
                yield FeedChange("POST_REMOVED", int(message["post_id"]), None)
            elif kind in (live.AUTHOR_GONE, live.GRAPH_CHANGED, RESYNC):
                if kind == RESYNC and await resolve_token(context.redis, token) is None:
                    raise Unauthenticated("the token is no longer valid")
                await _follow_celebrities(context, viewer_id, listener)
                if kind == live.AUTHOR_GONE:
                    async for change in _author_gone(context, viewer_id,
                                                     int(message["author_id"])):
                        said.discard(change.post_id)
                        yield change
                elif kind == RESYNC:
                    # The hub subscribed again before it said RESYNC: what is published
                    # from now on is heard, and said once (`said`) if the fill says it too.
                    floor = heard.floor()
                    heard.heard()
                    async for change in _resync(context, viewer_id, said, floor):
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
    for post_id in await HomeFeed(context.resources).recent_post_ids(author_id,
                                                                      REMOVED_ON_UNFOLLOW):
        yield FeedChange("POST_REMOVED", post_id, None)


async def _celebrity_channels(context: Context, viewer_id: int) -> list[str]:
    followed = await HomeFeed(context.resources).followed_celebrities(viewer_id,
                                                                      context.graph)
    return [keys.live_author(author_id) for author_id in followed]


async def _resync(
    context: Context, viewer_id: int, said: RecentlySaid, floor: int
) -> AsyncIterator[FeedChange]:
    """After messages may have been lost: the posts announced that the viewer may no
    longer see leave, then the feed's posts above `floor` not announced yet arrive,
    oldest first, in the order live messages would have brought them."""
    announced = list(said)
    visible = await _visible_posts(context, viewer_id, announced)
    for post_id in announced:
        if post_id not in visible:
            said.discard(post_id)
            yield FeedChange("POST_REMOVED", post_id, None)
    page = await HomeFeed(context.resources).page(
        viewer_id, context.graph, context.loaders.posts.load_many,
        context.loaders.users.load_many, GAP_FILL, None)
    missed = [post for post in page.posts if post.id > floor and post.id not in said]
    for post in reversed(missed):
        said.add(post.id)
        yield FeedChange("POST_ADDED", post.id, post)


async def _visible_announced(
    context: Context, viewer_id: int, post_id: int, with_post: bool
) -> PostRecord | None:
    """The announced post if it belongs in the viewer's feed now: the post and its author
    read once for the subscribers of this process, the viewer's relation per viewer (by
    a reader of its own for this message, over the process's one set of scripts)."""
    resources = context.resources
    post, author = await resources.live.shared(
        _shared_post(post_id), lambda: _post_and_author(resources, post_id))
    if post is None or author is None:
        return None
    relation = None
    if author.id != viewer_id:
        relation = await _relations(resources).load((viewer_id, author.id))
    if not in_feed(viewer_id, post, author, relation):
        return None
    if with_post:
        # What the client's selection reads of the post and author is what was judged.
        context.loaders.posts.prime(post.id, post)
        context.loaders.users.prime(author.id, author)
    return post


# Per client, for the process's one set of resources. The loader refers to its resources
# weakly: they hold the client, and a value that held its own key would keep both alive
# for ever (one app's worth per test, say).
_relation_loaders: WeakKeyDictionary[
    Redis, tuple[weakref.ref[Resources], DataLoader[tuple[int, int], Relation]]
] = WeakKeyDictionary()


def _relations(resources: Resources) -> DataLoader[tuple[int, int], Relation]:
    """(viewer, author) -> the viewer's relation to the author, read now. The process's
    subscriptions that judge a message in the same turn of the loop (a fan-out's message
    reaches all of them at once) are read together: one pipeline for the graphs Redis
    holds, one query for the others. Nothing is cached: each load is read afresh."""
    held = _relation_loaders.get(resources.redis)
    loop = asyncio.get_running_loop()
    if held is None or held[0]() is not resources or held[1].loop is not loop:
        owner = weakref.ref(resources)

        async def load(pairs: Sequence[tuple[int, int]]) -> list[Relation]:
            current = owner()
            if current is None:  # only ever asked by someone who holds them
                raise RuntimeError("the resources of this loader are gone")
            return await _read_relations(current, pairs)

        held = _relation_loaders[resources.redis] = (
            owner, DataLoader(load, cache=False, loop=loop))
    return held[1]


async def _read_relations(resources: Resources,
                          pairs: Sequence[tuple[int, int]]) -> list[Relation]:
    cache = GraphCache(resources.redis)  # its scripts are the client's (cache/scripts.py)
    by_author: dict[int, list[int]] = {}
    for viewer_id, author_id in pairs:
        by_author.setdefault(author_id, []).append(viewer_id)
    found: dict[tuple[int, int], Relation] = {}
    graph = FollowGraph(cache)  # for the graphs only the database holds: one query
    for author_id, viewer_ids in by_author.items():
        relations = await cache.relations_to(viewer_ids, author_id)
        cold = [v for v, r in zip(viewer_ids, relations, strict=True) if r is None]
        if cold:
            await graph.ensure_loaded(cold)
        for viewer_id, relation in zip(viewer_ids, relations, strict=True):
            if relation is None:
                relation = (await graph.relations(viewer_id, [author_id]))[author_id]
            found[(viewer_id, author_id)] = relation
    return [found[pair] for pair in pairs]


def _shared_post(post_id: int) -> tuple[str, int]:
    return ("post_added", post_id)


async def _post_and_author(
    resources: Resources, post_id: int
) -> tuple[PostRecord | None, UserRecord | None]:
    """What every subscriber shares of a POST_ADDED: read with loaders of its own, so it
    is nobody's operation state."""
    loaders = Loaders(resources.redis)
    post = await loaders.posts.load(post_id)
    if post is None:
        return None, None
    return post, await loaders.users.load(post.author_id)


async def _visible_posts(
    context: Context, viewer_id: int, post_ids: Sequence[int]
) -> dict[int, PostRecord]:
    """The posts among `post_ids` that belong in the viewer's feed now, by id."""
    if not post_ids:
        return {}
    posts = [p for p in await context.loaders.posts.load_many(post_ids) if p is not None]
    author_ids = list({post.author_id for post in posts})
    authors = {a.id: a for a in await context.loaders.users.load_many(author_ids)
               if a is not None}
    relations = await context.graph.relations(
        viewer_id, [a for a in authors if a != viewer_id])
    return {post.id: post for post in posts if post.author_id in authors and in_feed(
        viewer_id, post, authors[post.author_id], relations.get(post.author_id))}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

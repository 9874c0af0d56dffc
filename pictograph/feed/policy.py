"""The whole home-feed policy in one place (after Mastodon's FeedManager).

Writes, by the fan-out worker:
  push_to_home        a READY post goes into its author's and every follower's feed,
                      or, for a celebrity, only into the author's recent list
  merge_into_home     a new follow brings the followee's recent posts (backfill)
  unmerge_from_home   an ended follow takes them out again (tidiness: reads filter)
  forget_post         a deleted post leaves the author's recent list
Reads, by requests:
  page                candidates from the feed, merged with followed celebrities'
                      recent posts, then filtered against the live follow graph, so a
                      post never waits for a worker to disappear after an unfollow
  regenerate          a missing or flushed feed is rebuilt from posts and follows
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.graph.reader import FollowGraph
from pictograph.live import publish as live
from pictograph.models import Follow, FollowState, Post, PostStatus, User
from pictograph.records import PostRecord
from pictograph.visibility import feed_visible

FEED_CAP = 800
PAGE_CACHE_SIZE = 100
FANOUT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class FeedPage:
    posts: list[PostRecord]
    has_next: bool


class HomeFeed:
    def __init__(self, redis: Redis, celebrity_threshold: int) -> None:
        self.redis = redis
        self.cache = FeedCache(redis, FEED_CAP)
        self.celebrity_threshold = celebrity_threshold

    # Writes.

    async def push_to_home(self, post_id: int, author_id: int) -> int:
        """Returns how many feeds were written (1 for a celebrity: the recent list)."""
        await self.cache.add([keys.recent_posts(author_id)], [post_id])
        added = {"kind": live.POST_ADDED, "post_id": post_id, "author_id": author_id}
        if await self._is_celebrity(author_id):
            await live.to_author_followers(self.redis, author_id, added)
            return 1
        written = 1
        followers = self._followers(author_id)
        batch: list[int] = [author_id]
        async for follower in followers:
            batch.append(follower)
            if len(batch) >= FANOUT_BATCH:
                written += await self._push(batch, post_id, author_id)
                batch = []
        if batch:
            written += await self._push(batch, post_id, author_id)
        return written

    async def _push(self, user_ids: list[int], post_id: int, author_id: int) -> int:
        written = await self.cache.add([keys.home_feed(u) for u in user_ids], [post_id])
        await self.cache.drop_pages(user_ids)
        await live.to_viewers(self.redis, user_ids, {
            "kind": live.POST_ADDED, "post_id": post_id, "author_id": author_id,
        })
        return written

    async def merge_into_home(self, follower_id: int, author_id: int) -> None:
        recent = await self._recent(author_id, None, FEED_CAP)
        if recent:
            await self.cache.add([keys.home_feed(follower_id)], recent)
        await self.cache.drop_pages([follower_id])

    async def unmerge_from_home(self, follower_id: int, author_id: int) -> None:
        await self.cache.remove(keys.home_feed(follower_id),
                                await self._recent(author_id, None, FEED_CAP))
        await self.cache.drop_pages([follower_id])

    async def forget_post(self, post_id: int, author_id: int) -> None:
        """Reads already skip a deleted post; this tells live subscriptions and tidies
        the author's recent list."""
        await self.cache.remove(keys.recent_posts(author_id), [post_id])
        removed = {"kind": live.POST_REMOVED, "post_id": post_id, "author_id": author_id}
        if await self._is_celebrity(author_id):
            await live.to_author_followers(self.redis, author_id, removed)
            return
        batch: list[int] = [author_id]
        async for follower in self._followers(author_id):
            batch.append(follower)
            if len(batch) >= FANOUT_BATCH:
                await live.to_viewers(self.redis, batch, removed)
                batch = []
        await live.to_viewers(self.redis, batch, removed)

    async def recent_post_ids(self, author_id: int, limit: int) -> list[int]:
        return await self._recent(author_id, None, limit)

    async def followed_celebrities(self, viewer_id: int, graph: FollowGraph) -> list[int]:
        celebrities = await self._celebrities()
        if not celebrities:
            return []
        relations = await graph.relations(viewer_id, sorted(celebrities))
        return [c for c, relation in relations.items() if relation.following]

    async def _followers(self, author_id: int):
        """Accepted followers from the database, in keyset pages (a hot path for big
        fan-outs must not hold 10,000 rows at once)."""
        after = 0
        while True:
            page = await Follow.filter(
                followee_id=author_id, state=FollowState.ACCEPTED, follower_id__gt=after
            ).order_by("follower_id").limit(FANOUT_BATCH).values_list("follower_id", flat=True)
            for follower in page:
                yield follower
            if len(page) < FANOUT_BATCH:
                return
            after = page[-1]

    async def _is_celebrity(self, author_id: int) -> bool:
        celebrities = await self._celebrities()
        if author_id in celebrities:
            return True
        count = await User.filter(id=author_id).values_list("follower_count", flat=True)
        if count and count[0] >= self.celebrity_threshold:
            await self.cache.add_celebrity(author_id)
            return True
        return False

    async def _celebrities(self) -> set[int]:
        found = await self.cache.celebrity_ids()
        if found is None:
            found = set(await User.filter(
                follower_count__gte=self.celebrity_threshold
            ).values_list("id", flat=True))
            await self.cache.fill_celebrities(found)
        return found

    async def _recent(self, author_id: int, before: int | None, limit: int) -> list[int]:
        [(ids, complete)] = await self.cache.ranges([keys.recent_posts(author_id)], before,
                                                   limit)
        if complete:
            return ids
        newest = await _ready_post_ids([author_id], None, FEED_CAP)
        await self.cache.complete(keys.recent_posts(author_id), newest)
        return [i for i in newest if before is None or i < before][:limit]

    # Reads.

    async def page(
        self,
        viewer_id: int,
        graph: FollowGraph,
        load_posts,
        load_users,
        first: int,
        before: int | None,
    ) -> FeedPage:
        """Up to `first` visible posts older than `before`, newest first."""
        shown: list[PostRecord] = []
        cursor = before
        want = first + 1
        for _ in range(4):  # each round fetches more when filtering dropped entries
            candidates = await self._candidates(viewer_id, graph, cursor, want,
                                                use_page_cache=cursor is None)
            if not candidates:
                break
            shown.extend(await self._visible(viewer_id, graph, candidates, load_posts,
                                             load_users))
            if len(shown) > first or len(candidates) < want:
                break
            cursor, want = candidates[-1], want * 2
        return FeedPage(shown[:first], len(shown) > first)

    async def _visible(self, viewer_id, graph, candidates, load_posts, load_users):
        posts = [p for p in await load_posts(candidates)
                 if p is not None and p.status == PostStatus.READY]
        author_ids = list({p.author_id for p in posts})
        authors, relations = await asyncio.gather(
            load_users(author_ids), graph.relations(viewer_id, author_ids)
        )
        by_id = {a.id: a for a in authors if a is not None}
        return [
            p for p in posts
            if p.author_id in by_id and feed_visible(
                viewer_id, by_id[p.author_id],
                relations.get(p.author_id) if p.author_id != viewer_id else None,
            )
        ]

    async def _candidates(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int,
        use_page_cache: bool,
    ) -> list[int]:
        if use_page_cache and want <= PAGE_CACHE_SIZE:
            cached = await self.cache.cached_page(viewer_id)
            if cached is None:
                cached = await self._build_first_page(viewer_id, graph)
            if len(cached) >= want or len(cached) < PAGE_CACHE_SIZE:
                return cached[:want]
        return await self._merge(viewer_id, graph, before, want)

    async def _build_first_page(self, viewer_id: int, graph: FollowGraph) -> list[int]:
        """Single flight: one request per user rebuilds; the others wait a moment for it."""
        if await self.cache.lock_page(viewer_id):
            try:
                page = await self._merge(viewer_id, graph, None, PAGE_CACHE_SIZE)
                await self.cache.cache_page(viewer_id, page)
                return page
            finally:
                await self.cache.unlock_page(viewer_id)
        for _ in range(20):
            await asyncio.sleep(0.025)
            cached = await self.cache.cached_page(viewer_id)
            if cached is not None:
                return cached
        return await self._merge(viewer_id, graph, None, PAGE_CACHE_SIZE)

    async def _merge(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int
    ) -> list[int]:
        """The viewer's feed entries and followed celebrities' recent posts, merged."""
        followed_celebrities = await self.followed_celebrities(viewer_id, graph)
        [(own, complete)] = await self.cache.ranges([keys.home_feed(viewer_id)], before, want)
        if not complete:
            own = await self.regenerate(viewer_id, graph, before, want)
        elif len(own) < want and (len(own) == 0 or own[-1] > 0):
            own = await self._beyond_the_cap(viewer_id, graph, own, before, want)
        streams = [own]
        for celebrity in followed_celebrities:
            streams.append(await self._recent(celebrity, before, want))
        merged = heapq.merge(*streams, reverse=True)
        out: list[int] = []
        for post_id in merged:
            if not out or out[-1] != post_id:
                out.append(post_id)
            if len(out) == want:
                break
        return out

    async def _beyond_the_cap(self, viewer_id, graph, own, before, want):
        """A complete feed holds only its newest FEED_CAP entries; older pages come
        from the database, like a rebuild would."""
        if await self.redis.zcard(keys.home_feed(viewer_id)) - 1 < FEED_CAP:
            return own  # the feed is shorter than its cap: there is nothing older
        start = own[-1] if own else before
        authors = [viewer_id, *await graph.following_ids(viewer_id)]
        return own + await _ready_post_ids(authors, start, want - len(own))

    async def regenerate(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int
    ) -> list[int]:
        """Rebuilds a missing feed from posts and follows, the durable truth."""
        authors = [viewer_id, *await graph.following_ids(viewer_id)]
        newest = await _ready_post_ids(authors, None, FEED_CAP)
        await self.cache.complete(keys.home_feed(viewer_id), newest)
        older = [i for i in newest if before is None or i < before]
        if len(older) < want and len(newest) == FEED_CAP:
            start = older[-1] if older else before
            older += await _ready_post_ids(authors, start, want - len(older))
        return older[:want]


async def _ready_post_ids(author_ids: Sequence[int], before: int | None,
                          limit: int) -> list[int]:
    query = Post.filter(author_id__in=list(author_ids), status=PostStatus.READY)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit).values_list("id", flat=True)

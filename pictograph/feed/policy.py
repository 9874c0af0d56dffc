"""The whole home-feed policy in one place (after Mastodon's FeedManager).

Writes, by the fan-out worker:
  push_to_home        a READY post goes into its author's and every follower's feed,
                      or, for a celebrity, into the author's feed and recent list only
  merge_into_home     a new follow brings the followee's recent posts (backfill)
  unmerge_from_home   an ended follow takes them out again (tidiness: reads filter)
  forget_post         a deleted post leaves the author's recent list; subscribers hear
Reads, by requests:
  page                candidates from the feed, merged with followed celebrities'
                      recent posts, then filtered against the live follow graph, so a
                      post never waits for a worker to disappear after an unfollow
  regenerate          a missing or flushed feed is rebuilt from posts and follows
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from pictograph.cache import keys
from pictograph.cache.feeds import FEED_CAP, CachedPage, FeedCache, IdRange
from pictograph.cache.responses import Recording, ResponseCache
from pictograph.checkpoints import checkpoint
from pictograph.graph.reader import FollowGraph
from pictograph.live import publish as live
from pictograph.models import Follow, FollowState, User
from pictograph.posts import store
from pictograph.records import PostRecord, UserRecord
from pictograph.resources import Resources
from pictograph.visibility import in_feed

# Seconds after an author joins the celebrities during which their posts are still
# fanned out (see _merged_at_read): longer than a cached first page lives (60 s at most).
CELEBRITY_GRACE = 90
PAGE_CACHE_SIZE = 100
FANOUT_BATCH = 1000
MAX_ROUNDS = 12

LoadPosts = Callable[[list[int]], Awaitable[list[PostRecord | None]]]
LoadUsers = Callable[[list[int]], Awaitable[list[UserRecord | None]]]


@dataclass(frozen=True, slots=True)
class FeedPage:
    posts: list[PostRecord]
    has_next: bool
    authors: dict[int, UserRecord]  # of the posts shown, as the visibility check read them


class HomeFeed:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.redis = resources.redis
        self.cache = FeedCache(resources.redis, FEED_CAP)

    @property
    def celebrity_threshold(self) -> int:
        return self.resources.settings.celebrity_threshold

    # Writes.

    async def push_to_home(self, post_id: int, author_id: int) -> int:
        """Returns how many lists were written (the same for any celebrity)."""
        if not await store.is_shown(post_id):
            return 0  # deleted before its fan-out: nothing of it may be written
        await checkpoint("feed.push_checked")
        await self.cache.add([keys.recent_posts(author_id)], [post_id])
        added = {"kind": live.POST_ADDED, "post_id": post_id, "author_id": author_id}
        if await self._merged_at_read(author_id):
            # Followers merge it at read time; only the author's own feed holds it.
            await self.cache.add([keys.home_feed(author_id)], [post_id])
            await self.cache.drop_pages([author_id])
            # Followers' rendered feeds recorded the author's epoch (see page): one move
            # ends them all, however many there are.
            await ResponseCache(self.redis).changed([author_id])
            await live.to_author_followers(self.redis, author_id, added)
            await live.to_viewers(self.redis, [author_id], added)
            written = 2
        else:
            written = 1
            # Each batch is sent without waiting for Redis, which works through it while
            # the next page of followers is read from the database.
            async with self.cache.fanning_out([post_id], orjson.dumps(added)) as fan_out:
                async for batch in self._batches_of_followers(author_id):
                    written += await fan_out.push(batch)
        if not await store.is_shown(post_id):
            # Deleted while it was written: its post_deleted event may have been handled
            # before the lists held it, so take it out again here.
            await self.forget_post(post_id, author_id, announce=False)
        return written

    async def _merged_at_read(self, author_id: int) -> bool:
        """Whether the author's posts are merged at read time (a celebrity's) rather than
        fanned out. For CELEBRITY_GRACE after an author joins the celebrities, posts are
        fanned out still: pages cached before, which do not know to merge the author, age
        out meanwhile, and open subscriptions, told to listen to the author's channel,
        have done so. (Joining is noticed at the author's first post past the threshold.)"""
        if not await self.is_celebrity(author_id):
            return False
        since = await self.cache.celebrity_since(author_id)
        return since is None or time.time() - since >= CELEBRITY_GRACE

    async def merge_into_home(self, follower_id: int, author_id: int,
                              seq: int | None) -> None:
        """A follow brings the author's recent posts into the follower's feed. `seq` is
        the follower's sequence number of the change: applied in the pair's order."""
        recent = await self._recent(author_id, None, FEED_CAP)
        if seq is None:  # an event from before sequence numbers: ask the database
            if not await _follows(follower_id, author_id):
                return
            await self.cache.add([keys.home_feed(follower_id)], recent)
        else:
            await self.cache.follow_write(follower_id, author_id, seq, True, recent)
        await self.cache.drop_pages([follower_id])

    async def unmerge_from_home(self, follower_id: int, author_id: int,
                                seq: int | None) -> None:
        """An ended follow takes the author's posts out of the feed (tidiness: reads filter
        by the live graph anyway), in the pair's order like merge_into_home."""
        recent = await self._recent(author_id, None, FEED_CAP)
        await checkpoint("feed.unmerge_decided")
        if seq is None:
            if await _follows(follower_id, author_id):
                return
            await self.cache.remove(keys.home_feed(follower_id), recent)
        else:
            await self.cache.follow_write(follower_id, author_id, seq, False, recent)
        await self.cache.drop_pages([follower_id])

    async def forget_post(self, post_id: int, author_id: int, announce: bool = True) -> None:
        """Reads already skip a deleted post; this tidies the author's lists and, for a
        post that was ever shown (`announce`), tells live subscriptions."""
        await self.cache.remove(keys.recent_posts(author_id), [post_id])
        await self.cache.remove(keys.home_feed(author_id), [post_id])
        if not announce:
            return
        removed = {"kind": live.POST_REMOVED, "post_id": post_id, "author_id": author_id}
        if await self.is_celebrity(author_id):
            await live.to_author_followers(self.redis, author_id, removed)
            await live.to_viewers(self.redis, [author_id], removed)
            return
        async for batch in self._batches_of_followers(author_id):
            await live.to_viewers(self.redis, batch, removed)

    async def _batches_of_followers(self, author_id: int) -> AsyncIterator[list[int]]:
        """The author, then accepted followers from the database, in keyset pages (a
        big fan-out must not hold 10,000 rows at once). Each page is asked for while
        the one before it is handed out: the database reads it while this process packs
        and sends the last one."""
        yield [author_id]
        page = await _followers_after(author_id, 0)
        while page:
            following = None
            if len(page) == FANOUT_BATCH:
                following = asyncio.create_task(_followers_after(author_id, page[-1]))
            try:
                yield page
            except BaseException:
                if following is not None:  # the caller stopped, or failed: read no more
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                raise
            page = await following if following is not None else []

    async def is_celebrity(self, author_id: int) -> bool:
        if author_id in await self._celebrities():
            return True
        count = await User.filter(id=author_id).values_list("follower_count", flat=True)
        if count and count[0] >= self.celebrity_threshold:
            if await self.cache.add_celebrity(author_id):
                await self._tell_followers_of_new_celebrity(author_id)
            return True
        return False

    async def _tell_followers_of_new_celebrity(self, author_id: int) -> None:
        """Open subscriptions choose the celebrities' channels they listen to when they
        start; a follower's must now listen to this author's too."""
        changed = {"kind": live.GRAPH_CHANGED, "author_id": author_id}
        async for batch in self._batches_of_followers(author_id):
            await live.to_viewers(self.redis, batch, changed)
            await ResponseCache(self.redis).feeds_changed(batch)

    async def _celebrities(self) -> set[int]:
        found = await self.cache.celebrity_ids()
        if found is None:
            found = set(await User.filter(
                follower_count__gte=self.celebrity_threshold
            ).values_list("id", flat=True))
            await self.cache.fill_celebrities(found)
        return found

    async def recent_post_ids(self, author_id: int, limit: int) -> list[int]:
        return await self._recent(author_id, None, limit)

    async def _recent(self, author_id: int, before: int | None, limit: int) -> list[int]:
        [found] = await self.cache.ranges([keys.recent_posts(author_id)], before, limit)
        return await self._complete_recent(author_id, found, before, limit)

    async def _complete_recent(
        self, author_id: int, found: IdRange, before: int | None, limit: int
    ) -> list[int]:
        if not found.complete:
            epoch = await self.cache.fill_epoch(keys.recent_posts(author_id))
            newest = await store.shown_post_ids([author_id], None, FEED_CAP)
            await self.cache.complete(keys.recent_posts(author_id), newest, epoch)
            found = IdRange([i for i in newest if before is None or i < before][:limit],
                            True, len(newest) == FEED_CAP)
        if found.trimmed and len(found.ids) < limit:
            start = found.ids[-1] if found.ids else before
            return found.ids + await store.shown_post_ids([author_id], start,
                                                     limit - len(found.ids))
        return found.ids

    async def followed_celebrities(self, viewer_id: int, graph: FollowGraph) -> list[int]:
        celebrities = await self._celebrities()
        if not celebrities:
            return []
        relations = await graph.relations(viewer_id, sorted(celebrities))
        return [c for c, relation in relations.items() if relation.following]

    # Reads.

    async def page(
        self, viewer_id: int, graph: FollowGraph, load_posts: LoadPosts,
        load_users: LoadUsers, first: int, before: int | None,
        recording: Recording | None = None, page_read: Sequence[str | None] | None = None,
    ) -> FeedPage:
        """Up to `first` visible posts older than `before`, newest first. A page rendered
        for the response cache depends on the viewer's feed version, and records the
        epochs of the celebrities it merges first: their new posts reach no feed of the
        viewer's, so nothing else would tell it. `page_read`: the cached first page's keys
        (FeedCache.page_keys), read already."""
        if recording is not None:
            recording.reads_feed = True
            celebrities = await self.followed_celebrities(viewer_id, graph)
            await recording.depend_now(self.redis, [keys.user_shown(c) for c in celebrities])
        shown: list[PostRecord] = []
        authors: dict[int, UserRecord] = {}
        cursor = before
        want = first + 1
        for _ in range(MAX_ROUNDS):  # more rounds when filtering dropped entries
            candidates = await self._candidates(viewer_id, graph, cursor, want,
                                                use_page_cache=cursor is None,
                                                page_read=page_read)
            if not candidates:
                break
            shown.extend(await self._visible(viewer_id, graph, candidates, load_posts,
                                             load_users, authors))
            if len(shown) > first or len(candidates) < want:
                break
            cursor, want = candidates[-1], min(want * 2, FEED_CAP)
        return FeedPage(shown[:first], len(shown) > first, authors)

    async def _visible(
        self, viewer_id: int, graph: FollowGraph, candidates: list[int],
        load_posts: LoadPosts, load_users: LoadUsers, authors_read: dict[int, UserRecord],
    ) -> list[PostRecord]:
        """The candidates the viewer may see; their authors go into `authors_read`."""
        posts = [p for p in await load_posts(candidates) if p is not None]
        author_ids = list({p.author_id for p in posts})
        authors, relations = await asyncio.gather(
            load_users(author_ids), graph.relations(viewer_id, author_ids)
        )
        by_id = {a.id: a for a in authors if a is not None}
        authors_read.update(by_id)
        shown = [
            p for p in posts
            if p.author_id in by_id and in_feed(
                viewer_id, p, by_id[p.author_id],
                relations.get(p.author_id) if p.author_id != viewer_id else None,
            )
        ]
        await checkpoint("feed.filtered")
        deleted = set(candidates) - {p.id for p in posts}
        if deleted:
            # Deleted posts leave the stored feed now, so later reads do not scan past
            # them again. Only those: an unfollowed author's posts are the worker's to
            # take out, in the pair's order; this read's view of the graph may already be
            # older than a re-follow.
            await self.cache.remove(keys.home_feed(viewer_id), sorted(deleted))
        return shown

    async def _candidates(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int,
        use_page_cache: bool, page_read: Sequence[str | None] | None = None,
    ) -> list[int]:
        if use_page_cache and want <= PAGE_CACHE_SIZE:
            page = await self._first_page(viewer_id, graph, page_read)
            if len(page) >= want or len(page) < PAGE_CACHE_SIZE:
                return page[:want]
        return await self._merge(viewer_id, graph, before, want)

    async def _first_page(self, viewer_id: int, graph: FollowGraph,
                          read: Sequence[str | None] | None = None) -> list[int]:
        cached, generation = await self.cache.cached_page(viewer_id, read)
        if cached is None:
            cached = await self._build_first_page(viewer_id, graph, generation)
        elif cached.celebrities:
            # Celebrity posts do not drop followers' pages: merge in what is newer.
            top = cached.ids[0] if cached.ids else 0
            found = await self.cache.newer(
                [keys.recent_posts(c) for c in cached.celebrities], top, PAGE_CACHE_SIZE
            )
            newer = [i for ids in found for i in ids]
            if newer:
                return sorted(set(newer) | set(cached.ids), reverse=True)[:PAGE_CACHE_SIZE]
        return cached.ids

    async def _build_first_page(
        self, viewer_id: int, graph: FollowGraph, generation: str
    ) -> CachedPage:
        """Single flight: one request per user rebuilds; the others wait a moment."""
        token = await self.cache.lock_page(viewer_id)
        if token is None:
            for _ in range(20):
                await asyncio.sleep(0.025)
                cached, _ = await self.cache.cached_page(viewer_id)
                if cached is not None:
                    return cached
        try:
            celebrities = await self.followed_celebrities(viewer_id, graph)
            ids = await self._merge(viewer_id, graph, None, PAGE_CACHE_SIZE, celebrities)
            page = CachedPage(ids, celebrities)
            if token is not None:
                await self.cache.cache_page(viewer_id, page, generation)
            return page
        finally:
            if token is not None:
                await self.cache.unlock_page(viewer_id, token)

    async def _merge(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int,
        celebrities: list[int] | None = None,
    ) -> list[int]:
        """The viewer's feed entries and followed celebrities' recent posts, merged."""
        if celebrities is None:
            celebrities = await self.followed_celebrities(viewer_id, graph)
        lists = [keys.home_feed(viewer_id), *(keys.recent_posts(c) for c in celebrities)]
        own, *theirs = await self.cache.ranges(lists, before, want)
        streams = [await self._complete_own(viewer_id, graph, own, before, want)]
        for celebrity, found in zip(celebrities, theirs, strict=True):
            streams.append(await self._complete_recent(celebrity, found, before, want))
        out: list[int] = []
        for post_id in heapq.merge(*streams, reverse=True):
            if not out or out[-1] != post_id:
                out.append(post_id)
            if len(out) == want:
                break
        return out

    async def _complete_own(
        self, viewer_id: int, graph: FollowGraph, own: IdRange, before: int | None,
        want: int,
    ) -> list[int]:
        if not own.complete:
            return await self.regenerate(viewer_id, graph, before, want)
        if own.trimmed and len(own.ids) < want:
            # Entries older than the trimmed feed's oldest come from the database.
            start = own.ids[-1] if own.ids else before
            authors = [viewer_id, *await graph.following_ids(viewer_id)]
            return own.ids + await store.shown_post_ids(authors, start, want - len(own.ids))
        return own.ids

    async def regenerate(
        self, viewer_id: int, graph: FollowGraph, before: int | None, want: int
    ) -> list[int]:
        """Rebuilds a missing feed from posts and follows, the durable truth. The follows
        come from the database with their sequence number, so the follow writes already
        in the rebuilt feed are told apart from those still to come (see _REBUILT)."""
        epoch = await self.cache.fill_epoch(keys.home_feed(viewer_id))
        snapshot = await graph.database_snapshot(viewer_id)
        authors = [viewer_id, *snapshot.following]
        newest_with_authors = await store.shown_posts(authors, None, FEED_CAP)
        await checkpoint("feed.rebuild_read")
        await self.cache.rebuilt(viewer_id, snapshot.floor, newest_with_authors, epoch)
        newest = [post for post, _ in newest_with_authors]
        older = [i for i in newest if before is None or i < before]
        if len(older) < want and len(newest) == FEED_CAP:
            start = older[-1] if older else before
            older += await store.shown_post_ids(authors, start, want - len(older))
        return older[:want]


async def _followers_after(author_id: int, after: int) -> list[int]:
    """The next FANOUT_BATCH accepted followers of the author, by id, after `after`."""
    return list(await Follow.filter(
        followee_id=author_id, state=FollowState.ACCEPTED, follower_id__gt=after
    ).order_by("follower_id").limit(FANOUT_BATCH).values_list("follower_id", flat=True))


async def _follows(follower_id: int, author_id: int) -> bool:
    return await Follow.exists(follower_id=follower_id, followee_id=author_id,
                               state=FollowState.ACCEPTED)

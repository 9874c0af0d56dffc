"""What each kind of committed change does outside the database: the one table of
invalidations and live messages. Changes call after_commit() with their events once they
have committed (the follow graph has written its own cache through, in commit order,
before: see graph/changes.py); the workers' share (fan-out, media) is theirs, dispatched
on the same event types.

A revocation's caches were fenced before its commit (cache/versioned.py, cache/graph.py),
so if Redis fails here nothing can still grant what it took away; these writes bring the
caches back to full speed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from pictograph.cache.feeds import FeedCache
from pictograph.cache.posts import PostCache
from pictograph.cache.users import ProfileCache
from pictograph.events import (
    Blocked,
    Event,
    Followed,
    FollowRemoved,
    PostDeleted,
    PostFailed,
    PostReady,
    PrivacyChanged,
    Unfollowed,
)
from pictograph.live import publish as live
from pictograph.resources import Resources

log = logging.getLogger(__name__)


@dataclass
class Effects:
    profiles: set[int] = field(default_factory=set)  # profiles to drop (counts, privacy)
    posts: set[int] = field(default_factory=set)  # posts to drop (status, deletion)
    first_pages: set[int] = field(default_factory=set)  # cached first feed pages to drop
    live: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (viewer, message)

    def __or__(self, other: Effects) -> Effects:
        return Effects(self.profiles | other.profiles, self.posts | other.posts,
                       self.first_pages | other.first_pages, self.live + other.live)


def effects_of(event: Event) -> Effects:
    """The table. Kinds not named here have no effect beyond the graph's own cache (a
    request, its withdrawal or rejection, an unblock: nothing shown changes)."""
    match event:
        case Followed(follower=follower, followee=followee):
            # Counts on both profiles; the follower's cached page lacks the backfill, and
            # their subscriptions may have a celebrity to listen to.
            return Effects(profiles={follower, followee}, first_pages={follower, followee},
                           live=[(follower, {"kind": live.GRAPH_CHANGED,
                                             "author_id": followee})])
        case Unfollowed(follower=follower, followee=followee) | FollowRemoved(
                follower=follower, followee=followee):
            return Effects(profiles={follower, followee}, first_pages={follower, followee},
                           live=[(follower, author_gone(followee))])
        case Blocked(blocker=blocker, blocked=blocked, blocker_followed=blocker_followed,
                     blocked_followed=blocked_followed):
            # Only a follower who was following saw the other's posts: only they are told
            # the posts left (the ids tell when the posts were made).
            ended = [(blocker, blocked)] * blocker_followed + [(blocked, blocker)] * (
                blocked_followed)
            users = {blocker, blocked} if ended else set()
            return Effects(profiles=users, first_pages=users,
                           live=[(viewer, author_gone(author)) for viewer, author in ended])
        case PrivacyChanged(user=user):
            return Effects(profiles={user}, first_pages={user})
        case PostReady(post_id=post, author_id=author) | PostDeleted(
                post_id=post, author_id=author):
            return Effects(profiles={author}, posts={post})  # postCount, the post itself
        case PostFailed(post_id=post):
            return Effects(posts={post})
    return Effects()


def author_gone(author_id: int) -> dict[str, Any]:
    return {"kind": live.AUTHOR_GONE, "author_id": author_id}


async def after_commit(resources: Resources, changes: Iterable[Event]) -> None:
    effects = Effects()
    for event in changes:
        effects |= effects_of(event)
    redis = resources.redis
    try:
        if effects.profiles:
            await ProfileCache(redis).forget(sorted(effects.profiles))
        if effects.posts:
            await PostCache(redis).forget(sorted(effects.posts))
        if effects.first_pages:
            await FeedCache(redis).drop_pages(sorted(effects.first_pages))
        for viewer, message in effects.live:
            await live.to_viewers(redis, [viewer], message)
    except RedisError as error:
        # What was fenced stays fenced until its fence expires; the rest is a cache that
        # ages out (profiles in minutes, pages in a minute).
        log.warning("after-commit effects not applied: redis unavailable (%s)",
                    type(error).__name__)

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

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.cache.posts import PostCache
from pictograph.cache.responses import Fence, ResponseCache
from pictograph.cache.users import ProfileCache
from pictograph.events import (
    Blocked,
    Event,
    Followed,
    FollowRemoved,
    PairChange,
    PostChange,
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
    # Rendered responses to drop (cache/responses.py): these users' own, and, by moving
    # their epochs, every response that showed these users or posts.
    shown_users: set[int] = field(default_factory=set)
    shown_posts: set[int] = field(default_factory=set)
    # These users' own responses, and every response that showed their follower or
    # following counts or lists (a pair they are in changed).
    shown_follows: set[int] = field(default_factory=set)

    def __or__(self, other: Effects) -> Effects:
        return Effects(self.profiles | other.profiles, self.posts | other.posts,
                       self.first_pages | other.first_pages, self.live + other.live,
                       self.shown_users | other.shown_users,
                       self.shown_posts | other.shown_posts,
                       self.shown_follows | other.shown_follows)


def effects_of(event: Event) -> Effects:
    """The table: what the event changes, then what any change of a pair or a post
    changes in rendered responses. A pair change changes what its two users see (follow
    status, followsViewer, what is visible: their own responses) and, for everyone
    else, only their counts and lists: a celebrity's new follower leaves the answers
    that show the celebrity's posts. Privacy, posts and profiles may change any field."""
    changed = _effects_of(event)
    match event:
        case PairChange(a=a, b=b):
            changed.shown_follows |= {a, b}
        case PrivacyChanged(user=user):
            changed.shown_users.add(user)
        case PostChange(post_id=post, author_id=author):
            changed.shown_users.add(author)  # postCount, the author's own list
            changed.shown_posts.add(post)
    return changed


def _effects_of(event: Event) -> Effects:
    """Caches and live messages. Kinds not named here have no effect beyond the graph's
    own cache (a request, its withdrawal or rejection, an unblock) and responses."""
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


async def after_commit(resources: Resources, changes: Iterable[Event],
                       fence: Fence | None = None) -> None:
    """`fence`: the rendered responses' fence the change took before its commit, which
    this ends (and only this: another change's fence stays until its own move)."""
    try:
        await _apply_after_commit(resources, changes, fence)
    finally:
        if fence is not None:
            # A revocation returns once no process holds a copy of what it fenced
            # (cache/responses.py, EpochLeases), whatever became of the moves.
            await fence.settled()


async def _apply_after_commit(resources: Resources, changes: Iterable[Event],
                              fence: Fence | None) -> None:
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
        # Last: a response rendered after this reads the caches dropped above.
        await ResponseCache(redis).changed(effects.shown_users, effects.shown_posts, fence,
                                           follows=effects.shown_follows)
    except RedisError as error:
        # What was fenced stays fenced until its fence expires; the rest is a cache that
        # ages out (profiles in minutes, pages in a minute).
        log.warning("after-commit effects not applied: redis unavailable (%s)",
                    type(error).__name__)


async def account_changed(resources: Resources, user_id: int) -> None:
    """After a change to what is shown of one account, recorded by no event (its profile
    fields, a post it just created): its cached profile and every response showing it
    (one epoch: a few commands, however many were shown it). Nothing is revoked, so it
    never fails the change, which has committed: through a Redis outage the caches
    age out (profiles in minutes, responses within their lifetime)."""
    try:
        await ProfileCache(resources.redis).forget([user_id])
        await ResponseCache(resources.redis).changed([user_id])
    except RedisError as error:
        log.warning("account change not applied to caches: redis unavailable (%s)",
                    type(error).__name__)


async def now_shown(resources: Resources, user_ids: Iterable[int] = (),
                    post_ids: Iterable[int] = ()) -> None:
    """A new user or post: its epoch made now, so that the first answer showing it can
    be cached (one that finds an epoch missing is not). Nothing depends on it yet, so an
    outage only costs that answer."""
    epoch_keys = ([key for u in user_ids for key in (keys.user_shown(u),
                                                     keys.user_follows_shown(u))]
                  + [keys.post_shown(p) for p in post_ids])
    try:
        await ResponseCache(resources.redis).make_epochs(epoch_keys)
    except RedisError as error:
        log.warning("new epochs not made: redis unavailable (%s)", type(error).__name__)

"""Domain events, typed: one dataclass per kind of change.

Every change makes its events inside its own transaction. After the commit, effects.py
says what each kind does to caches and live subscriptions (in one table). Kinds that a
worker consumes have a stream: those are also written to an outbox row in the same
transaction and published to their Redis Stream after the commit; a crash or a Redis
outage between the two leaves the row, which the outbox relay publishes later, so no
committed change loses an event that someone waits for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.models import OutboxEvent

log = logging.getLogger(__name__)

STREAM_MAX_LENGTH = 100_000


class Stream(StrEnum):
    FOLLOWS = "follows"  # the follow graph changed (the fan-out worker's)
    MEDIA = "media"  # a post's photo waits for processing (the media worker's)
    POSTS = "posts"  # a post became visible, or went away (the fan-out worker's)


FOLLOWS, MEDIA, POSTS = Stream.FOLLOWS, Stream.MEDIA, Stream.POSTS


class Kind(StrEnum):
    FOLLOWED = "followed"
    UNFOLLOWED = "unfollowed"
    FOLLOW_REMOVED = "follow_removed"
    FOLLOW_REQUESTED = "follow_requested"
    REQUEST_WITHDRAWN = "follow_request_withdrawn"
    REQUEST_REJECTED = "follow_request_rejected"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    PRIVACY_CHANGED = "privacy_changed"
    PROCESS_POST = "process_post"
    POST_READY = "post_ready"
    POST_FAILED = "post_failed"
    POST_DELETED = "post_deleted"


@dataclass(frozen=True, kw_only=True)
class Event:
    KIND: ClassVar[Kind]
    STREAM: ClassVar[Stream | None] = None  # None: no worker consumes it; not published
    # The outbox row's id, once the event has one; consumers deduplicate by it.
    event_id: int | None = field(default=None, compare=False)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        del data["event_id"]
        return {"kind": self.KIND.value, **data}


@dataclass(frozen=True, kw_only=True)
class PairChange(Event):
    """A change of what two users are to each other. `seq_a` and `seq_b` number it in
    each user's graph order (users.graph_seq): writes that depend on the pair apply in
    that order. (None in events written before they carried them.)"""

    a: int
    b: int
    seq_a: int | None = None
    seq_b: int | None = None

    def seq_of(self, user: int) -> int | None:
        return self.seq_a if user == self.a else self.seq_b if user == self.b else None


@dataclass(frozen=True, kw_only=True)
class FollowChange(PairChange):
    """A change of one direction of the pair: the follower's follow (or request)."""

    follower: int
    followee: int


@dataclass(frozen=True, kw_only=True)
class Followed(FollowChange):
    KIND = Kind.FOLLOWED
    STREAM = FOLLOWS


@dataclass(frozen=True, kw_only=True)
class Unfollowed(FollowChange):
    KIND = Kind.UNFOLLOWED
    STREAM = FOLLOWS


@dataclass(frozen=True, kw_only=True)
class FollowRemoved(FollowChange):
    KIND = Kind.FOLLOW_REMOVED
    STREAM = FOLLOWS


@dataclass(frozen=True, kw_only=True)
class FollowRequested(FollowChange):
    KIND = Kind.FOLLOW_REQUESTED


@dataclass(frozen=True, kw_only=True)
class RequestWithdrawn(FollowChange):
    KIND = Kind.REQUEST_WITHDRAWN


@dataclass(frozen=True, kw_only=True)
class RequestRejected(FollowChange):
    KIND = Kind.REQUEST_REJECTED


@dataclass(frozen=True, kw_only=True)
class Blocked(PairChange):
    """Ends the follows of both directions; `blocker_followed` and `blocked_followed`
    say which existed (the followers who saw the other's posts)."""

    KIND = Kind.BLOCKED
    STREAM = FOLLOWS
    blocker: int
    blocked: int
    blocker_followed: bool = True
    blocked_followed: bool = True


@dataclass(frozen=True, kw_only=True)
class Unblocked(PairChange):
    KIND = Kind.UNBLOCKED
    blocker: int
    blocked: int


@dataclass(frozen=True, kw_only=True)
class PrivacyChanged(Event):
    KIND = Kind.PRIVACY_CHANGED
    user: int
    private: bool


@dataclass(frozen=True, kw_only=True)
class ProcessPost(Event):
    KIND = Kind.PROCESS_POST
    STREAM = MEDIA
    post_id: int


@dataclass(frozen=True, kw_only=True)
class PostChange(Event):
    post_id: int
    author_id: int


@dataclass(frozen=True, kw_only=True)
class PostReady(PostChange):
    KIND = Kind.POST_READY
    STREAM = POSTS


@dataclass(frozen=True, kw_only=True)
class PostFailed(PostChange):
    KIND = Kind.POST_FAILED


@dataclass(frozen=True, kw_only=True)
class PostDeleted(PostChange):
    """`was_ready`: the post was ever shown (only then is its removal anyone's news)."""

    KIND = Kind.POST_DELETED
    STREAM = POSTS
    was_ready: bool = True


KINDS: dict[str, type[Event]] = {cls.KIND.value: cls for cls in (
    Followed, Unfollowed, FollowRemoved, FollowRequested, RequestWithdrawn, RequestRejected,
    Blocked, Unblocked, PrivacyChanged, ProcessPost, PostReady, PostFailed, PostDeleted,
)}


def from_payload(payload: dict[str, Any], event_id: int | None = None) -> Event:
    """The event a payload describes; fields it does not know are left out (a payload
    written by a newer version), missing ones take their defaults (an older one)."""
    cls = KINDS[payload["kind"]]
    known = {f.name for f in fields(cls)} - {"event_id"}
    return cls(event_id=event_id, **{k: v for k, v in payload.items() if k in known})


async def record(changes: Sequence[Event]) -> list[OutboxEvent]:
    """Outbox rows for the events a worker consumes. Call inside the transaction that
    makes the changes."""
    return [await OutboxEvent.create(stream=event.STREAM.value, payload=event.payload())
            for event in changes if event.STREAM is not None]


async def publish(
    redis: Redis,
    rows: Sequence[OutboxEvent],
    before_publish: Callable[[OutboxEvent], Awaitable[None]] | None = None,
) -> None:
    """XADDs each row's event and deletes the row. `before_publish` runs first for each
    (the outbox relay brings the graph cache up to date there)."""
    for row in rows:
        if before_publish is not None:
            await before_publish(row)
        await redis.xadd(
            keys.event_stream(row.stream),
            {"event_id": str(row.id), "kind": row.payload["kind"],
             "data": orjson.dumps(row.payload)},
            maxlen=STREAM_MAX_LENGTH,
            approximate=True,
        )
        await OutboxEvent.filter(id=row.id).delete()


async def leftovers(older_than: timedelta, limit: int = 500) -> list[OutboxEvent]:
    cutoff = datetime.now(UTC) - older_than
    return await OutboxEvent.filter(created_at__lte=cutoff).order_by("id").limit(limit)


def decode(fields_: dict[str, str]) -> Event:
    """A stream entry's event, as a consumer sees it."""
    return from_payload(orjson.loads(fields_["data"]), int(fields_["event_id"]))

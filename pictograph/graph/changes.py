"""Every change to the follow graph, each the same way: lock both users, change the
rows and counts, record the event, commit; then write the pair through to Redis and
publish the event. The database is the truth; Redis follows it in commit order."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pictograph import events
from pictograph.cache.feeds import FeedCache
from pictograph.cache.graph import GraphCache
from pictograph.cache.users import ProfileCache
from pictograph.checkpoints import checkpoint
from pictograph.errors import Conflict, Forbidden, NotFound
from pictograph.graph import store
from pictograph.live import publish as live
from pictograph.models import Block, Follow, FollowState, OutboxEvent, User
from pictograph.records import FollowStatus, PairState
from pictograph.resources import Resources
from pictograph.visibility import follow_status

log = logging.getLogger(__name__)

# A privacy change re-reads the requests under its locks and starts again if more came;
# requests arriving faster than that is an attack, not a crowd.
MAX_PRIVACY_ATTEMPTS = 5


@dataclass
class _Outcome:
    """What a change did: its events, and whose counts moved."""

    events: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    counts_changed: set[int] = field(default_factory=set)
    # (follower, followee) of every accepted follow that ended: only these followers saw
    # the followee's posts in their feeds, so only they are told the posts left.
    follows_ended: list[tuple[int, int]] = field(default_factory=list)


async def _lock_users(user_ids: Sequence[int]) -> dict[int, bool]:
    """Row locks on the users, taken in one statement in id order so that two changes
    never deadlock. Returns each user's is_private as of the lock.

    (Whole rows, not values_list: Tortoise drops FOR UPDATE from a values query.)"""
    rows = await User.filter(id__in=sorted(set(user_ids))).select_for_update().order_by("id")
    return {row.id: row.is_private for row in rows}


async def _next_sequences(user_ids: Sequence[int]) -> dict[int, int]:
    """Numbers this change in each user's graph order; call while holding their locks."""
    await User.filter(id__in=list(user_ids)).update(graph_seq=F("graph_seq") + 1)
    return dict(await User.filter(id__in=list(user_ids)).values_list("id", "graph_seq"))


def _is_lock_conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure that PostgreSQL resolved by aborting us."""
    while error is not None:
        if type(error).__name__ in ("DeadlockDetectedError", "SerializationError"):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


async def _requesters(owner: int) -> list[int]:
    return list(await Follow.filter(
        followee_id=owner, state=FollowState.REQUESTED
    ).values_list("follower_id", flat=True))


async def _adjust_counts(follower: int, followee: int, delta: int, outcome: _Outcome) -> None:
    await User.filter(id=follower).update(following_count=F("following_count") + delta)
    await User.filter(id=followee).update(follower_count=F("follower_count") + delta)
    outcome.counts_changed.update((follower, followee))


class GraphChanges:
    def __init__(self, resources: Resources) -> None:
        self.redis = resources.redis
        self.cache = GraphCache(resources.redis)
        self.profiles = ProfileCache(resources.redis)
        self.feeds = FeedCache(resources.redis)

    # The mutations. `a` is always the user making the request.

    async def follow(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, private: dict[int, bool], out: _Outcome) -> None:
            if pair.b_blocks_a:
                # Someone who blocked you does not exist for you.
                raise NotFound("no such user")
            if pair.a_blocks_b:
                raise Forbidden("you blocked this user: unblock them first")
            if pair.a_follows_b:
                return
            if pair.a_requested_b is not None:
                if private[b]:
                    return  # still waiting for b
                # A request left from when b was private: b is public now, so it is a
                # follow like any other.
                await Follow.filter(id=pair.a_requested_b).update(state=FollowState.ACCEPTED)
                await _adjust_counts(a, b, +1, out)
                out.events.append(("followed", {"follower": a, "followee": b}))
                return
            if private[b]:
                await Follow.create(follower_id=a, followee_id=b, state=FollowState.REQUESTED)
                out.events.append(("follow_requested", {"follower": a, "followee": b}))
            else:
                await Follow.create(follower_id=a, followee_id=b, state=FollowState.ACCEPTED)
                await _adjust_counts(a, b, +1, out)
                out.events.append(("followed", {"follower": a, "followee": b}))

        return await self._change(a, b, change)

    async def unfollow(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            await self._end_follow(follower=a, followee=b, pair_follow=pair.a_follows_b,
                                   pair_request=pair.a_requested_b, kind="unfollowed", out=out)

        return await self._change(a, b, change)

    async def remove_follower(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            await self._end_follow(follower=b, followee=a, pair_follow=pair.b_follows_a,
                                   pair_request=pair.b_requested_a, kind="follow_removed",
                                   out=out)

        return await self._change(a, b, change)

    async def approve_request(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.b_follows_a:
                return
            if pair.b_requested_a is None:
                raise NotFound("no follow request from that user")
            await Follow.filter(id=pair.b_requested_a).update(state=FollowState.ACCEPTED)
            await _adjust_counts(b, a, +1, out)
            out.events.append(("followed", {"follower": b, "followee": a}))

        return await self._change(a, b, change)

    async def reject_request(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.b_requested_a is not None:
                await Follow.filter(id=pair.b_requested_a).delete()
                out.events.append(("follow_request_rejected", {"follower": b, "followee": a}))

        return await self._change(a, b, change)

    async def block(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.a_blocks_b:
                return
            await self._end_follow(follower=a, followee=b, pair_follow=pair.a_follows_b,
                                   pair_request=pair.a_requested_b, kind=None, out=out)
            await self._end_follow(follower=b, followee=a, pair_follow=pair.b_follows_a,
                                   pair_request=pair.b_requested_a, kind=None, out=out)
            await Block.create(blocker_id=a, blocked_id=b)
            out.events.append(("blocked", {"blocker": a, "blocked": b}))

        return await self._change(a, b, change)

    async def unblock(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.a_blocks_b:
                await Block.filter(blocker_id=a, blocked_id=b).delete()
                out.events.append(("unblocked", {"blocker": a, "blocked": b}))

        return await self._change(a, b, change)

    async def set_privacy(self, owner: int, is_private: bool) -> None:
        """Turns an account private or public. Going public accepts pending requests,
        as people who asked to follow a now-public account would expect."""
        outcome = _Outcome()
        locked: list[int] = []
        for _ in range(MAX_PRIVACY_ATTEMPTS):
            if locked:
                await checkpoint("privacy.requesters_read")
            async with in_transaction():
                # The owner and every requester, locked in one ordered statement like any
                # other change, so this cannot deadlock with a requester's own change.
                current = await _lock_users([owner, *locked])
                if current[owner] == is_private:
                    return
                asking = [] if is_private else await _requesters(owner)
                if set(asking) - set(locked):
                    # Requests made since the requesters were last read: lock them too
                    # (in order, from the start) rather than strand them on an account
                    # that is public from now on.
                    locked = sorted(set(locked) | set(asking))
                    continue
                await User.filter(id=owner).update(is_private=is_private)
                if asking:
                    await Follow.filter(
                        followee_id=owner, state=FollowState.REQUESTED, follower_id__in=asking,
                    ).update(state=FollowState.ACCEPTED)
                    await User.filter(id__in=asking).update(
                        following_count=F("following_count") + 1
                    )
                    await User.filter(id=owner).update(
                        follower_count=F("follower_count") + len(asking)
                    )
                sequences = await _next_sequences([owner, *asking]) if asking else {}
                for follower in asking:
                    outcome.events.append(("followed", {
                        "a": owner, "b": follower, "seq_a": sequences[owner],
                        "seq_b": sequences[follower], "follower": follower,
                        "followee": owner,
                    }))
                outcome.events.append(("privacy_changed", {"user": owner,
                                                           "private": is_private}))
                outbox = [await events.record(events.FOLLOWS, kind, **data)
                          for kind, data in outcome.events]
                # Going private hides posts from non-followers: no cached profile may say
                # "public" once this commits (see cache/versioned.py). Going public is
                # fenced the same way, for one rule instead of two.
                await self.profiles.fence([owner])
                break
        else:
            raise Conflict("follow requests keep arriving: try again")
        if sequences:
            # Requests became follows on both sides; rebuilding is simpler than
            # rewriting every pair, and going public is rare.
            await self._forget_quietly(sequences)
        await self._after_commit(outbox, {owner, *asking})

    # The machinery.

    async def _end_follow(
        self,
        *,
        follower: int,
        followee: int,
        pair_follow: int | None,
        pair_request: int | None,
        kind: str | None,
        out: _Outcome,
    ) -> None:
        if pair_follow is not None:
            await Follow.filter(id=pair_follow).delete()
            await _adjust_counts(follower, followee, -1, out)
            out.follows_ended.append((follower, followee))
            if kind:
                out.events.append((kind, {"follower": follower, "followee": followee}))
        elif pair_request is not None:
            await Follow.filter(id=pair_request).delete()
            if kind:
                out.events.append(
                    ("follow_request_withdrawn", {"follower": follower, "followee": followee})
                )

    async def _change(
        self,
        a: int,
        b: int,
        change: Callable[[PairState, dict[int, bool], _Outcome], Awaitable[None]],
    ) -> FollowStatus:
        outcome = _Outcome()
        after, sequences, outbox = await self._commit(a, b, change, outcome)
        written = await self._write_through(after, sequences)
        # If Redis could not take the new state, the outbox rows stay for the relay,
        # which re-syncs the pair before it publishes them.
        await self._after_commit(outbox if written else [], outcome.counts_changed)
        await self._tell_subscriptions(outcome)
        return follow_status(a, b, after.relation_for_a())

    async def _tell_subscriptions(self, outcome: _Outcome) -> None:
        """Open subscriptions stop showing an author the moment the follow ends (they
        check the live graph too; this makes them say POST_REMOVED). Only followers who
        were following are told: anyone else never saw those posts, and their ids would
        tell when the posts were made."""
        try:
            for follower, followee in outcome.follows_ended:
                await live.to_viewers(self.redis, [follower], {
                    "kind": live.AUTHOR_GONE, "author_id": followee})
            for kind, data in outcome.events:
                if kind == "followed":
                    await live.to_viewers(self.redis, [data["follower"]], {
                        "kind": live.GRAPH_CHANGED, "author_id": data["followee"]})
        except RedisError:
            log.warning("could not tell live subscriptions about %d changes",
                        len(outcome.events))

    async def _commit(
        self,
        a: int,
        b: int,
        change: Callable[[PairState, dict[int, bool], _Outcome], Awaitable[None]],
        outcome: _Outcome,
    ) -> tuple[PairState, tuple[int, int], list[OutboxEvent]]:
        for attempt in range(3):
            try:
                async with in_transaction():
                    private = await _lock_users([a, b])
                    if b not in private:
                        raise NotFound("no such user")
                    await change(await store.load_pair(a, b), private, outcome)
                    numbers = await _next_sequences([a, b])
                    # Each event carries both users' numbers for this change: feed writes
                    # that depend on the pair apply only if no later change of it has
                    # been applied (see feed/policy.py).
                    outbox = [
                        await events.record(events.FOLLOWS, kind, a=a, b=b,
                                            seq_a=numbers[a], seq_b=numbers[b], **data)
                        for kind, data in outcome.events
                    ]
                    after = await store.load_pair(a, b)
                    sequences = (numbers[a], numbers[b])
                    # Last, just before the commit: if Redis cannot take the fence, the
                    # change rolls back (see cache/graph.py, "Fences").
                    await self.cache.fence(after, sequences)
                    await checkpoint("graph.fenced")
                return after, sequences, outbox
            except Exception as error:
                if attempt == 2 or not _is_lock_conflict(error):
                    raise
                outcome.events.clear()
                outcome.counts_changed.clear()
                outcome.follows_ended.clear()
        raise AssertionError("unreachable")

    async def _write_through(self, pair: PairState, sequences: tuple[int, int]) -> bool:
        try:
            await self.cache.apply(pair, sequences)
            return True
        except RedisError:
            log.warning("graph cache write failed for %s/%s; dropping both graphs",
                        pair.a, pair.b)
            await self._forget_quietly({pair.a: sequences[0], pair.b: sequences[1]})
            return False

    async def _after_commit(self, outbox: list[OutboxEvent], users: set[int]) -> None:
        try:
            if users:
                await self.profiles.forget(sorted(users))
                # Reads filter by the live graph anyway; the cached first page goes too,
                # so a follow's backfill shows up without waiting for it to expire.
                await self.feeds.drop_pages(users)
            await events.publish(self.redis, outbox)
        except RedisError:
            # The outbox rows stay; the relay re-syncs the graph and publishes them.
            log.warning("publishing %d follow events failed; the outbox relay will retry",
                        len(outbox))

    async def _forget_quietly(self, sequences: dict[int, int]) -> None:
        try:
            await self.cache.forget(sequences)
        except RedisError:
            log.error("could not drop cached graphs of %s; the outbox relay will re-sync",
                      list(sequences))

    async def resync(self, event: OutboxEvent) -> None:
        """Brings the cached graphs of an event's users up to date with the database;
        the relay calls it before publishing an event that a request could not."""
        if event.stream != events.FOLLOWS:
            return
        payload = event.payload
        if "a" in payload and "b" in payload:
            # A change that changes nothing: the locks and a fresh sequence number order
            # this write after every committed change of the pair.
            async def unchanged(*_: object) -> None:
                return None

            pair, sequences, _ = await self._commit(payload["a"], payload["b"], unchanged,
                                                    _Outcome())
            await self.cache.apply(pair, sequences)
            await self.profiles.forget([payload["a"], payload["b"]])
        elif "user" in payload:
            await self.profiles.forget([payload["user"]])

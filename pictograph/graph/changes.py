"""Every change to the follow graph, each the same way: lock both users, change the rows
and counts, number the change in both users' graph order, make its events, fence the
pair in Redis, commit; then write the pair through to Redis, apply the events' effects
(effects.py) and publish them. The database is the truth; Redis follows it in commit
order."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from tortoise.transactions import in_transaction

from pictograph import effects, events
from pictograph.cache.graph import GraphCache
from pictograph.cache.responses import Fence, ResponseCache
from pictograph.cache.users import ProfileCache
from pictograph.checkpoints import checkpoint
from pictograph.errors import Conflict, Forbidden, NotFound
from pictograph.events import (
    Blocked,
    Event,
    Followed,
    FollowRemoved,
    FollowRequested,
    PairChange,
    PrivacyChanged,
    RequestRejected,
    RequestWithdrawn,
    Unblocked,
    Unfollowed,
)
from pictograph.graph import rows, store
from pictograph.models import Block, Follow, FollowState, OutboxEvent, User
from pictograph.records import FollowStatus, PairState
from pictograph.resources import Resources
from pictograph.visibility import follow_status

log = logging.getLogger(__name__)

# Changes that take something away: their fences (the graph's, then the responses', on
# the same two users' slots) are on a replica before the commit (cache/replicas.py).
REVOKING = (Unfollowed, FollowRemoved, Blocked)
# A privacy change re-reads the requests under its locks and starts again if more came;
# requests arriving faster than that is an attack, not a crowd.
MAX_PRIVACY_ATTEMPTS = 5


@dataclass
class _Outcome:
    """The events a pair change makes, numbered once the change has its numbers."""

    kinds: list[tuple[type[PairChange], dict[str, Any]]] = field(default_factory=list)

    def add(self, kind: type[PairChange], **data: Any) -> None:
        self.kinds.append((kind, data))

    def events(self, a: int, b: int, sequences: tuple[int, int]) -> list[Event]:
        return [kind(a=a, b=b, seq_a=sequences[0], seq_b=sequences[1], **data)
                for kind, data in self.kinds]


Change = Callable[[PairState, dict[int, bool], _Outcome], Awaitable[None]]


class GraphChanges:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.redis = resources.redis
        self.cache = GraphCache(resources.redis)
        self.profiles = ProfileCache(resources.redis)
        self.responses = ResponseCache(resources.redis)

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
            elif private[b]:
                await Follow.create(follower_id=a, followee_id=b, state=FollowState.REQUESTED)
                out.add(FollowRequested, follower=a, followee=b)
                return
            else:
                await Follow.create(follower_id=a, followee_id=b, state=FollowState.ACCEPTED)
            await rows.adjust_counts(a, b, +1)
            out.add(Followed, follower=a, followee=b)

        return await self._change(a, b, change)

    async def unfollow(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if await _end_follow(a, b, pair.a_follows_b, pair.a_requested_b):
                out.add(Unfollowed, follower=a, followee=b)
            elif pair.a_requested_b is not None:
                out.add(RequestWithdrawn, follower=a, followee=b)

        return await self._change(a, b, change)

    async def remove_follower(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if await _end_follow(b, a, pair.b_follows_a, pair.b_requested_a):
                out.add(FollowRemoved, follower=b, followee=a)
            elif pair.b_requested_a is not None:
                out.add(RequestWithdrawn, follower=b, followee=a)

        return await self._change(a, b, change)

    async def approve_request(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.b_follows_a:
                return
            if pair.b_requested_a is None:
                raise NotFound("no follow request from that user")
            await Follow.filter(id=pair.b_requested_a).update(state=FollowState.ACCEPTED)
            await rows.adjust_counts(b, a, +1)
            out.add(Followed, follower=b, followee=a)

        return await self._change(a, b, change)

    async def reject_request(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.b_requested_a is not None:
                await Follow.filter(id=pair.b_requested_a).delete()
                out.add(RequestRejected, follower=b, followee=a)

        return await self._change(a, b, change)

    async def block(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.a_blocks_b:
                return
            a_followed = await _end_follow(a, b, pair.a_follows_b, pair.a_requested_b)
            b_followed = await _end_follow(b, a, pair.b_follows_a, pair.b_requested_a)
            await Block.create(blocker_id=a, blocked_id=b)
            out.add(Blocked, blocker=a, blocked=b, blocker_followed=a_followed,
                    blocked_followed=b_followed)

        return await self._change(a, b, change)

    async def unblock(self, a: int, b: int) -> FollowStatus:
        async def change(pair: PairState, _: dict[int, bool], out: _Outcome) -> None:
            if pair.a_blocks_b:
                await Block.filter(blocker_id=a, blocked_id=b).delete()
                out.add(Unblocked, blocker=a, blocked=b)

        return await self._change(a, b, change)

    async def set_privacy(self, owner: int, is_private: bool) -> None:
        """Turns an account private or public. Going public accepts pending requests,
        as people who asked to follow a now-public account would expect."""
        locked: list[int] = []
        for _ in range(MAX_PRIVACY_ATTEMPTS):
            if locked:
                await checkpoint("privacy.requesters_read")
            async with in_transaction():
                # The owner and every requester, locked in one ordered statement like any
                # other change, so this cannot deadlock with a requester's own change.
                current = await rows.lock_users([owner, *locked])
                if current[owner] == is_private:
                    return
                asking = [] if is_private else await rows.requesters(owner)
                if set(asking) - set(locked):
                    # Requests made since the requesters were last read: lock them too
                    # (in order, from the start) rather than strand them on an account
                    # that is public from now on.
                    locked = sorted(set(locked) | set(asking))
                    continue
                await User.filter(id=owner).update(is_private=is_private)
                sequences: dict[int, int] = {}
                if asking:
                    await rows.accept_requests(owner, asking)
                    sequences = await rows.next_sequences([owner, *asking])
                changes: list[Event] = [
                    Followed(a=owner, b=follower, seq_a=sequences[owner],
                             seq_b=sequences[follower], follower=follower, followee=owner)
                    for follower in asking
                ]
                changes.append(PrivacyChanged(user=owner, private=is_private))
                outbox = await events.record(changes)
                # Going private hides posts from non-followers: no cached profile may say
                # "public" once this commits (see cache/versioned.py). Going public is
                # fenced the same way, for one rule instead of two.
                await self.profiles.fence([owner])
                # The owner's answers, and every one that showed the owner. (Requesters
                # who become followers lose nothing: their answers move after the commit.)
                # Going public waits for the epochs' copies too (a cluster's), so that
                # strangers see the posts at once, as on one node; it is rare.
                fence = await self.responses.fence([owner], revokes=is_private,
                                                   settles=True)
                await checkpoint("privacy.fenced")
                break
        else:
            raise Conflict("follow requests keep arriving: try again")
        if sequences:
            # Requests became follows on both sides; rebuilding is simpler than
            # rewriting every pair, and going public is rare.
            await self._forget_quietly(sequences)
        await self._after_commit(changes, outbox, fence)

    # The machinery.

    async def _change(self, a: int, b: int, change: Change) -> FollowStatus:
        after, sequences, changes, outbox, fence = await self._commit(a, b, change)
        written = await self._write_through(after, sequences)
        # If Redis could not take the new state, the outbox rows stay for the relay,
        # which re-syncs the pair before it publishes them.
        await self._after_commit(changes, outbox if written else [], fence)
        return follow_status(a, b, after.relation_for_a())

    async def _commit(
        self, a: int, b: int, change: Change
    ) -> tuple[PairState, tuple[int, int], list[Event], list[OutboxEvent], Fence]:
        fence: Fence | None = None  # one for every attempt, ended by one move
        for attempt in range(3):
            outcome = _Outcome()
            try:
                async with in_transaction():
                    private = await rows.lock_users([a, b])
                    if b not in private:
                        raise NotFound("no such user")
                    await change(await store.load_pair(a, b), private, outcome)
                    numbers = await rows.next_sequences([a, b])
                    sequences = (numbers[a], numbers[b])
                    # Each event carries both users' numbers for this change: feed writes
                    # that depend on the pair apply only if no later change of it has
                    # been applied (see feed/policy.py).
                    changes = outcome.events(a, b, sequences)
                    outbox = await events.record(changes)
                    after = await store.load_pair(a, b)
                    # Last, just before the commit: if Redis cannot take the fence, the
                    # change rolls back (see cache/graph.py, "Fences").
                    await self.cache.fence(after, sequences)
                    fence = await self.responses.fence(
                        follows=[a, b], also=fence,
                        revokes=any(isinstance(event, REVOKING) for event in changes))
                    await checkpoint("graph.fenced")
                return after, sequences, changes, outbox, fence
            except Exception as error:
                if attempt == 2 or not rows.is_lock_conflict(error):
                    raise
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

    async def _after_commit(self, changes: list[Event], outbox: list[OutboxEvent],
                            fence: Fence) -> None:
        await effects.after_commit(self.resources, changes, fence)
        try:
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

    async def resync(self, row: OutboxEvent) -> None:
        """Brings the cached graphs of an event's users up to date with the database;
        the relay calls it before publishing an event that a request could not."""
        event = events.from_payload(row.payload)
        if isinstance(event, PairChange):
            # A change that changes nothing: the locks and a fresh sequence number order
            # this write after every committed change of the pair.
            async def unchanged(*_: object) -> None:
                return None

            pair, sequences, _, _, fence = await self._commit(event.a, event.b, unchanged)
            await self.cache.apply(pair, sequences)
            await self.profiles.forget([event.a, event.b])
            await self.responses.changed(follows=[event.a, event.b], fence=fence)


async def _end_follow(follower: int, followee: int, follow: int | None,
                      request: int | None) -> bool:
    """Ends a follow (or withdraws a request); True if a follow (accepted) ended."""
    if follow is not None:
        await Follow.filter(id=follow).delete()
        await rows.adjust_counts(follower, followee, -1)
        return True
    if request is not None:
        await Follow.filter(id=request).delete()
    return False

"""The fan-out worker: applies post and follow events to the stored home feeds.

Reads never wait for it (they filter against the live follow graph), so it only has
to be eventually right, and every step is idempotent: adding a post that is there,
or removing one that is not, changes nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from pictograph import events
from pictograph.cache import keys
from pictograph.events import (
    Blocked,
    Event,
    Followed,
    FollowRemoved,
    PostDeleted,
    PostReady,
    Unfollowed,
)
from pictograph.feed.policy import HomeFeed
from pictograph.resources import Resources
from pictograph.workers.streams import StreamConsumer, run_together

log = logging.getLogger(__name__)

GROUP = "fanout"
DEAD_LETTERS = "fanout-dead-letters"


async def apply_event(feed: HomeFeed, event: Event) -> None:
    """The fan-out worker's share of each kind of event (effects.py has the rest)."""
    match event:
        case PostReady(post_id=post, author_id=author):
            written = await feed.push_to_home(post, author)
            log.debug("post %s fanned out to %d feeds", post, written)
        case PostDeleted(post_id=post, author_id=author, was_ready=was_ready):
            await feed.forget_post(post, author, announce=was_ready)
        case Followed(follower=follower, followee=followee):
            await feed.merge_into_home(follower, followee, event.seq_of(follower))
        case Unfollowed(follower=follower, followee=followee) | FollowRemoved(
                follower=follower, followee=followee):
            await feed.unmerge_from_home(follower, followee, event.seq_of(follower))
        case Blocked(blocker=blocker, blocked=blocked):
            await feed.unmerge_from_home(blocker, blocked, event.seq_of(blocker))
            await feed.unmerge_from_home(blocked, blocker, event.seq_of(blocked))


def fanout_consumers(resources: Resources, **options: Any) -> list[StreamConsumer]:
    """The fan-out worker's consumers, one per stream it reads; `options` override the
    production ones (tests step them by hand)."""
    feed = HomeFeed(resources)

    async def handle(event: Event) -> None:
        await apply_event(feed, event)

    async def set_aside(event: Event) -> None:
        # Kept for an operator to replay (XRANGE, then XADD back): a fan-out lost to a
        # long outage must not vanish.
        await resources.redis.xadd(keys.event_stream(DEAD_LETTERS),
                                   {"data": orjson.dumps(event.payload())}, maxlen=100_000)
        log.error("fan-out gave up on %s; kept in %s", event.KIND,
                  keys.event_stream(DEAD_LETTERS))

    # Retried 30 times, a claim-idle time apart (fifteen minutes by default: outages
    # pass), before it is set aside. A lost stream (Redis flushed) needs no recovery:
    # it loses the feeds with it, and a missing feed is rebuilt from the database.
    chosen: dict[str, Any] = {
        "on_poison": set_aside, "max_deliveries": 30,
        "claim_idle_ms": int(resources.settings.worker_claim_idle * 1000), **options}
    return [
        StreamConsumer(resources.redis, keys.event_stream(stream), GROUP, handle,
                       resources.metrics, **chosen)
        for stream in (events.POSTS, events.FOLLOWS)
    ]


async def run_fanout_worker(resources: Resources, stop: asyncio.Event) -> None:
    consumers = fanout_consumers(resources)
    await run_together(consumer.run(stop) for consumer in consumers)

"""The fan-out worker: applies post and follow events to the stored home feeds.

Reads never wait for it (they filter against the live follow graph), so it only has
to be eventually right, and every step is idempotent: adding a post that is there,
or removing one that is not, changes nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from pictograph import events
from pictograph.cache import keys
from pictograph.feed.policy import HomeFeed
from pictograph.workers.streams import StreamConsumer, run_together

if TYPE_CHECKING:
    from pictograph.resources import Resources

log = logging.getLogger(__name__)

GROUP = "fanout"
DEAD_LETTERS = "fanout-dead-letters"
_ENDED = ("unfollowed", "follow_removed")


async def apply_event(feed: HomeFeed, event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "post_ready":
        written = await feed.push_to_home(event["post_id"], event["author_id"])
        log.debug("post %s fanned out to %d feeds", event["post_id"], written)
    elif kind == "post_deleted":
        await feed.forget_post(event["post_id"], event["author_id"],
                               announce=event.get("was_ready", True))
    elif kind == "followed":
        await feed.merge_into_home(event["follower"], event["followee"],
                                   _sequence_of(event, event["follower"]))
    elif kind in _ENDED:
        await feed.unmerge_from_home(event["follower"], event["followee"],
                                     _sequence_of(event, event["follower"]))
    elif kind == "blocked":
        await feed.unmerge_from_home(event["blocker"], event["blocked"],
                                     _sequence_of(event, event["blocker"]))
        await feed.unmerge_from_home(event["blocked"], event["blocker"],
                                     _sequence_of(event, event["blocked"]))


def _sequence_of(event: dict[str, Any], user: int) -> int | None:
    """The user's sequence number of the change the event records (None for an event
    from before events carried them)."""
    if user == event.get("a"):
        return event.get("seq_a")
    if user == event.get("b"):
        return event.get("seq_b")
    return None


async def run_fanout_worker(resources: Resources, stop: asyncio.Event) -> None:
    feed = HomeFeed(resources)

    async def handle(event: dict[str, Any]) -> None:
        await apply_event(feed, event)

    async def set_aside(event: dict[str, Any]) -> None:
        # Kept for an operator to replay (XRANGE, then XADD back): a fan-out lost to a
        # long outage must not vanish.
        await resources.redis.xadd(keys.event_stream(DEAD_LETTERS),
                                   {"data": orjson.dumps(event)}, maxlen=100_000)
        log.error("fan-out gave up on %s; kept in %s", event.get("kind"),
                  keys.event_stream(DEAD_LETTERS))

    # Retried 30 times, a claim-idle time apart (fifteen minutes by default: outages
    # pass), before it is set aside. A lost stream (Redis flushed) needs no recovery:
    # it loses the feeds with it, and a missing feed is rebuilt from the database.
    consumers = [
        StreamConsumer(resources.redis, keys.event_stream(stream), GROUP, handle,
                       resources.metrics, on_poison=set_aside, max_deliveries=30,
                       claim_idle_ms=int(resources.settings.worker_claim_idle * 1000))
        for stream in (events.POSTS, events.FOLLOWS)
    ]
    await run_together(consumer.run(stop) for consumer in consumers)

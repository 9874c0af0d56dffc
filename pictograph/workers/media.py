"""The media worker: consumers of the media stream, each job a post's photo to process
(posts/processing.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from pictograph import events, image_sandbox
from pictograph.cache import keys
from pictograph.events import Event, ProcessPost
from pictograph.posts import lifecycle, processing
from pictograph.resources import Resources
from pictograph.workers.streams import StreamConsumer, run_together

log = logging.getLogger(__name__)

GROUP = "media-workers"
CONSUMERS_PER_PROCESS = 2


async def requeue_unfinished(resources: Resources) -> None:
    """Queues again the job of every PROCESSING post that the stream does not hold.
    Called when the media stream's group had to be created: past the first start, Redis
    lost the stream and the jobs in it (a flush, a restart without persistence), and only
    the database still knows them. A job queued twice is done once (see processing.py)."""
    unfinished = await lifecycle.unfinished_post_ids()
    if not unfinished:
        return
    queued = await _queued_post_ids(resources.redis)
    post_ids = [post_id for post_id in unfinished if post_id not in queued]
    if not post_ids:
        return
    async with in_transaction():
        outbox = await events.record([ProcessPost(post_id=post_id) for post_id in post_ids])
    log.warning("media stream was lost; queued %d unfinished posts again", len(outbox))
    await events.publish(resources.redis, outbox)


async def _queued_post_ids(redis: Redis, page: int = 1000) -> set[int]:
    """The posts whose jobs the media stream holds (it is capped, so this is bounded)."""
    stream = keys.event_stream(events.MEDIA)
    found: set[int] = set()
    start = "-"
    while entries := await redis.xrange(stream, start, "+", count=page):
        for _, fields in entries:
            event = events.decode(fields)
            if isinstance(event, ProcessPost):
                found.add(event.post_id)
        if len(entries) < page:
            break
        start = "(" + entries[-1][0]
    return found


def media_consumer(resources: Resources, **options: Any) -> StreamConsumer:
    """One consumer of the media stream; `options` override the production ones."""
    async def handle(event: Event) -> None:
        if isinstance(event, ProcessPost):
            await processing.process_post(resources, event.post_id)

    async def give_up(event: Event) -> None:
        if isinstance(event, ProcessPost):
            await lifecycle.give_up_processing(resources, event.post_id)

    async def recover() -> None:
        await requeue_unfinished(resources)

    # One message at a time: a claimed batch could otherwise sit idle long enough for
    # another consumer to take it over while this one still works on it. A job that
    # fails 20 times (outages do not count) ends its post FAILED.
    chosen: dict[str, Any] = {
        "on_poison": give_up, "on_group_created": recover, "batch": 1,
        "claim_idle_ms": int(resources.settings.worker_claim_idle * 1000),
        "max_deliveries": 20, **options}
    return StreamConsumer(resources.redis, keys.event_stream(events.MEDIA), GROUP, handle,
                          resources.metrics, **chosen)


async def run_media_worker(resources: Resources, stop: asyncio.Event) -> None:
    # The fork server that starts each photo's process, ready before the first photo.
    await asyncio.to_thread(image_sandbox.start)
    consumers = [media_consumer(resources) for _ in range(CONSUMERS_PER_PROCESS)]
    await run_together(consumer.run(stop) for consumer in consumers)

"""The media worker: turns a PROCESSING post's original into its served variants.

Every step is idempotent, because a message can be delivered twice: variant keys are
derived from the post id (a retry overwrites), and the final transaction changes the
post only while it is still PROCESSING."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pictograph import events, image_sandbox
from pictograph.cache import keys
from pictograph.cache.posts import PostCache
from pictograph.cache.users import ProfileCache
from pictograph.images import ImageRejected
from pictograph.models import MediaVariant, Post, PostStatus, Upload, User
from pictograph.posts import garbage
from pictograph.records import MediaSize
from pictograph.storage.base import ObjectNotFound
from pictograph.storage.signing import variant_key
from pictograph.workers.streams import StreamConsumer, run_together

if TYPE_CHECKING:
    from pictograph.resources import Resources

log = logging.getLogger(__name__)

GROUP = "media-workers"
CONSUMERS_PER_PROCESS = 2
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


async def process_post(resources: Resources, post_id: int) -> None:
    post = await Post.get_or_none(id=post_id)
    if post is None:
        # Deleted meanwhile. A delivery that died after storing variants left them to
        # nobody: the post's deletion knew only the variants recorded in its rows.
        async with in_transaction():
            trash = await garbage.discard(_variant_keys(resources, post_id))
        await garbage.collect(resources.storage, trash)
        return
    if post.status != PostStatus.PROCESSING:
        return  # a duplicate delivery of finished work
    upload = await Upload.get(id=post.upload_id)
    try:
        original = await resources.storage.get(upload.object_key)
    except ObjectNotFound:
        await _finish(resources, post, [], "the upload is gone")
        return
    try:
        # In a process of its own, stopped at its CPU limit: a file that would take minutes
        # fails in seconds, once, instead of holding this consumer (and everyone's photos).
        variants = await image_sandbox.process_image_isolated(
            original, max_pixels=resources.settings.max_image_pixels,
            cpu_seconds=resources.settings.media_cpu_seconds,
        )
    except ImageRejected as rejected:
        await _finish(resources, post, [], rejected.reason)
        return
    stored: list[dict[str, Any]] = []
    for variant in variants:
        key = variant_key(resources.secret_key, post_id, variant.size,
                          _EXTENSIONS[variant.content_type])
        await resources.storage.put(key, variant.data, variant.content_type)
        stored.append({
            "size": variant.size,
            "object_key": key,
            "width": variant.width,
            "height": variant.height,
            "content_type": variant.content_type,
            "byte_size": len(variant.data),
            "etag": hashlib.sha256(variant.data).hexdigest()[:32],
        })
    await _finish(resources, post, stored, None)


def _variant_keys(resources: Resources, post_id: int) -> list[str]:
    """Every key a delivery of this post's job can have written."""
    return [variant_key(resources.secret_key, post_id, size, extension)
            for size in MediaSize for extension in sorted(set(_EXTENSIONS.values()))]


async def _finish(
    resources: Resources,
    post: Post,
    variants: list[dict[str, Any]],
    failure: str | None,
) -> None:
    async with in_transaction():
        locked = await Post.filter(id=post.id).select_for_update().first()
        if locked is None:
            # Deleted while we worked: what we (or a delivery that died) wrote is nobody's.
            trash = await garbage.discard(_variant_keys(resources, post.id))
            outbox = []
        elif locked.status != PostStatus.PROCESSING:
            # Another delivery of this job finished first. Our keys are its keys (they
            # derive from the post id), so they must stay.
            trash, outbox = [], []
        else:
            await MediaVariant.filter(post_id=post.id).delete()
            for variant in variants:
                await MediaVariant.create(post_id=post.id, **variant)
            status = PostStatus.FAILED if failure else PostStatus.READY
            await Post.filter(id=post.id).update(status=status, failure_reason=failure)
            author_id = locked.author_id  # type: ignore[attr-defined]
            if status == PostStatus.READY:
                await User.filter(id=author_id).update(post_count=F("post_count") + 1)
            # Originals are never served: once processed, the original goes.
            upload = await Upload.get(id=locked.upload_id)
            trash = await garbage.discard_original(upload)
            if failure:
                # A delivery that died or gave up mid-way may have stored some variants.
                trash += await garbage.discard(_variant_keys(resources, post.id))
            kind = "post_ready" if status == PostStatus.READY else "post_failed"
            outbox = [await events.record(events.POSTS, kind, post_id=post.id,
                                          author_id=author_id)]
    await PostCache(resources.redis).forget([post.id])
    if outbox:
        await ProfileCache(resources.redis).forget([outbox[0].payload["author_id"]])
        await events.publish(resources.redis, outbox)
    await garbage.collect(resources.storage, trash)
    log.info("post %s processed: %s", post.id, failure or "ready")


async def requeue_unfinished(resources: Resources) -> None:
    """Queues again the job of every PROCESSING post that the stream does not hold.
    Called when the media stream's group had to be created: past the first start, Redis
    lost the stream and the jobs in it (a flush, a restart without persistence), and only
    the database still knows them. A job queued twice is done once (see process_post)."""
    unfinished = await Post.filter(status=PostStatus.PROCESSING).values_list("id", flat=True)
    if not unfinished:
        return
    queued = await _queued_post_ids(resources.redis)
    post_ids = [post_id for post_id in unfinished if post_id not in queued]
    if not post_ids:
        return
    async with in_transaction():
        outbox = [await events.record(events.MEDIA, "process_post", post_id=post_id)
                  for post_id in post_ids]
    log.warning("media stream was lost; queued %d unfinished posts again", len(outbox))
    await events.publish(resources.redis, outbox)


async def _queued_post_ids(redis: Redis, page: int = 1000) -> set[int]:
    """The posts whose jobs the media stream holds (it is capped, so this is bounded)."""
    stream = keys.event_stream(events.MEDIA)
    found: set[int] = set()
    start = "-"
    while entries := await redis.xrange(stream, start, "+", count=page):
        found.update(int(events.decode(fields)["post_id"]) for _, fields in entries)
        if len(entries) < page:
            break
        start = "(" + entries[-1][0]
    return found


async def run_media_worker(resources: Resources, stop: asyncio.Event) -> None:
    async def handle(event: dict[str, Any]) -> None:
        await process_post(resources, int(event["post_id"]))

    async def give_up(event: dict[str, Any]) -> None:
        post = await Post.get_or_none(id=int(event["post_id"]))
        if post is not None and post.status == PostStatus.PROCESSING:
            await _finish(resources, post, [], "the photo could not be processed; post it again")

    async def recover() -> None:
        await requeue_unfinished(resources)

    # The fork server that starts each photo's process, ready before the first photo.
    await asyncio.to_thread(image_sandbox.start)

    # One message at a time: a claimed batch could otherwise sit idle long enough for
    # another consumer to take it over while this one still works on it. A failing job
    # is retried 20 times, a claim-idle time apart (ten minutes by default: storage
    # outages pass), before the post fails.
    consumers = [
        StreamConsumer(resources.redis, keys.event_stream(events.MEDIA), GROUP, handle,
                       resources.metrics, on_poison=give_up, on_group_created=recover,
                       batch=1, claim_idle_ms=int(resources.settings.worker_claim_idle * 1000),
                       max_deliveries=20)
        for _ in range(CONSUMERS_PER_PROCESS)
    ]
    await run_together(consumer.run(stop) for consumer in consumers)

"""The media worker: turns a PROCESSING post's original into its served variants.

Every step is idempotent, because a message can be delivered twice: variant keys are
derived from the post id (a retry overwrites), and the final transaction changes the
post only while it is still PROCESSING."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pictograph import events
from pictograph.cache import keys
from pictograph.cache.posts import PostCache
from pictograph.cache.users import ProfileCache
from pictograph.images import ImageRejected, process_image
from pictograph.models import MediaVariant, Post, PostStatus, Upload, User
from pictograph.posts import garbage
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
    if post is None or post.status != PostStatus.PROCESSING:
        return  # deleted meanwhile, or a duplicate delivery of finished work
    upload = await Upload.get(id=post.upload_id)
    try:
        original = await resources.storage.get(upload.object_key)
    except ObjectNotFound:
        await _finish(resources, post, [], "the upload is gone")
        return
    try:
        variants = await asyncio.to_thread(
            process_image, original, max_pixels=resources.settings.max_image_pixels
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


async def _finish(
    resources: Resources,
    post: Post,
    variants: list[dict[str, Any]],
    failure: str | None,
) -> None:
    async with in_transaction():
        locked = await Post.filter(id=post.id).select_for_update().first()
        if locked is None:
            # Deleted while we worked: what we wrote is nobody's.
            trash = await garbage.discard(v["object_key"] for v in variants)
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
            kind = "post_ready" if status == PostStatus.READY else "post_failed"
            outbox = [await events.record(events.POSTS, kind, post_id=post.id,
                                          author_id=author_id)]
    await PostCache(resources.redis).forget([post.id])
    if outbox:
        await ProfileCache(resources.redis).forget([outbox[0].payload["author_id"]])
        await events.publish(resources.redis, outbox)
    await garbage.collect(resources.storage, trash)
    log.info("post %s processed: %s", post.id, failure or "ready")


async def run_media_worker(resources: Resources, stop: asyncio.Event) -> None:
    async def handle(event: dict[str, Any]) -> None:
        await process_post(resources, int(event["post_id"]))

    async def give_up(event: dict[str, Any]) -> None:
        post = await Post.get_or_none(id=int(event["post_id"]))
        if post is not None and post.status == PostStatus.PROCESSING:
            await _finish(resources, post, [], "the photo could not be processed; post it again")

    # One message at a time: a claimed batch could otherwise sit idle long enough for
    # another consumer to take it over while this one still works on it. A failing job
    # is retried for about ten minutes (storage outages pass) before the post fails.
    consumers = [
        StreamConsumer(resources.redis, keys.event_stream(events.MEDIA), GROUP, handle,
                       resources.metrics, on_poison=give_up, batch=1, claim_idle_ms=30_000,
                       max_deliveries=20)
        for _ in range(CONSUMERS_PER_PROCESS)
    ]
    await run_together(consumer.run(stop) for consumer in consumers)

"""Processing a post's photo: its original turned into the served variants, in a
process of its own (image_sandbox.py), then the post READY or FAILED (lifecycle.py).

Every step is idempotent, because a job can be delivered twice: variant keys derive from
the post id (a retry overwrites), and the transition changes the post only while it is
still PROCESSING."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from tortoise.transactions import in_transaction

from pictograph import image_sandbox
from pictograph.images import ImageRejected
from pictograph.media_types import extension
from pictograph.models import Post, Upload
from pictograph.posts import garbage, lifecycle
from pictograph.resources import Resources
from pictograph.storage.base import ObjectNotFound
from pictograph.storage.signing import all_variant_keys, variant_key

log = logging.getLogger(__name__)


async def process_post(resources: Resources, post_id: int) -> None:
    post = await Post.get_or_none(id=post_id)
    if post is None:
        # Deleted meanwhile. A delivery that died after storing variants left them to
        # nobody: the post's deletion knew only the variants recorded in its rows.
        async with in_transaction():
            trash = await garbage.discard(all_variant_keys(resources.secret_key, post_id))
        await garbage.collect(resources.storage, trash)
        return
    if not lifecycle.awaits_processing(post):
        return  # a duplicate delivery of finished work
    upload = await Upload.get(id=post.upload_id)
    try:
        original = await resources.storage.get(upload.object_key)
    except ObjectNotFound:
        await lifecycle.finish_processing(resources, post.id, [], "the upload is gone")
        return
    try:
        # In a process of its own, stopped at its CPU limit: a file that would take minutes
        # fails in seconds, once, instead of holding this consumer (and everyone's photos).
        variants = await image_sandbox.process_image_isolated(
            original, max_pixels=resources.settings.max_image_pixels,
            cpu_seconds=resources.settings.media_cpu_seconds,
        )
    except ImageRejected as rejected:
        await lifecycle.finish_processing(resources, post.id, [], rejected.reason)
        return
    stored: list[dict[str, Any]] = []
    for variant in variants:
        key = variant_key(resources.secret_key, post_id, variant.size,
                          extension(variant.content_type))
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
    await lifecycle.finish_processing(resources, post.id, stored, None)

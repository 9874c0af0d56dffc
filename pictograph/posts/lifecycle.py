"""A post's life: created PROCESSING from an upload, READY or FAILED after the media
worker, and deleted by its author. Each step commits its rows, its events and its
garbage together."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pictograph import events
from pictograph.cache.posts import PostCache
from pictograph.cache.users import ProfileCache
from pictograph.errors import BadUserInput, Conflict, Forbidden, NotFound
from pictograph.models import MediaVariant, Post, PostStatus, Upload, User
from pictograph.posts import garbage
from pictograph.resources import Resources

log = logging.getLogger(__name__)

MAX_CAPTION = 2200


def clean_caption(caption: str | None) -> str:
    caption = (caption or "").strip()
    if len(caption) > MAX_CAPTION:
        raise BadUserInput(f"a caption has at most {MAX_CAPTION} characters", field="caption")
    if any(ord(char) < 32 and char not in "\n\t" for char in caption):
        raise BadUserInput("the caption contains control characters", field="caption")
    return caption


async def create_post(
    resources: Resources, author_id: int, upload_id: int | None, caption: str | None
) -> int:
    caption = clean_caption(caption)
    upload = (
        await Upload.get_or_none(id=upload_id, owner_id=author_id) if upload_id else None
    )
    if upload is None:
        raise NotFound("no such upload", field="uploadId")
    if upload.post_id is not None:
        raise Conflict("that upload is already posted", field="uploadId")
    if upload.expires_at <= datetime.now(UTC):
        raise BadUserInput("that upload ticket has expired: create a new one", field="uploadId")
    stored = await resources.storage.size(upload.object_key)
    if not stored:
        raise BadUserInput("nothing was uploaded with that ticket", field="uploadId")
    if stored > upload.byte_size:
        await resources.storage.delete(upload.object_key)
        raise BadUserInput(
            f"the upload has {stored} bytes, more than the {upload.byte_size} declared",
            field="uploadId",
        )
    async with in_transaction():
        post = Post(author_id=author_id, caption=caption, upload_id=upload.id)
        # Claiming the upload and creating the post are one step: two concurrent
        # createPost calls with one upload make one post.
        claimed = await Upload.filter(id=upload.id, post_id__isnull=True).update(post_id=post.id)
        if not claimed:
            raise Conflict("that upload is already posted", field="uploadId")
        await post.save(force_create=True)
        job = await events.record(events.MEDIA, "process_post", post_id=post.id)
    await _publish_quietly(resources, [job])
    return post.id


async def delete_post(resources: Resources, viewer_id: int, post_id: int) -> None:
    async with in_transaction():
        post = await Post.filter(id=post_id).select_for_update().first()
        if post is None:
            raise NotFound("no such post")
        if post.author_id != viewer_id:  # type: ignore[attr-defined]
            raise Forbidden("only its author can delete a post")
        keys = await MediaVariant.filter(post_id=post_id).values_list("object_key", flat=True)
        trash = await garbage.discard(keys)
        upload = await Upload.get_or_none(id=post.upload_id)
        if upload is not None:
            # Gone already once processed, but a still-valid ticket could put it back.
            trash += await garbage.discard_original(upload)
            await upload.delete()
        await post.delete()
        if post.status == PostStatus.READY:
            await User.filter(id=viewer_id).update(post_count=F("post_count") - 1)
        # Before the commit: no cached copy may show the post once it is gone.
        await PostCache(resources.redis).fence([post_id])
        # Only a READY post was ever shown: the removal of any other is nobody's news.
        event = await events.record(
            events.POSTS, "post_deleted", post_id=post_id, author_id=viewer_id,
            was_ready=post.status == PostStatus.READY,
        )
    await PostCache(resources.redis).forget([post_id])
    await ProfileCache(resources.redis).forget([viewer_id])  # postCount
    await _publish_quietly(resources, [event])
    await garbage.collect(resources.storage, trash)


async def _publish_quietly(resources: Resources, outbox: list) -> None:
    try:
        await events.publish(resources.redis, outbox)
    except Exception:
        log.warning("publishing %d events failed; the outbox relay will retry", len(outbox))

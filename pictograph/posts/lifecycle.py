"""A post's life: created PROCESSING from an upload, READY or FAILED once its photo was
processed (processing.py), and deleted by its author. This module alone moves a post
between those states; each step commits its rows, its events and its garbage together,
then applies the events' effects (effects.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pictograph import effects, events
from pictograph.cache.posts import PostCache
from pictograph.cache.responses import ResponseCache
from pictograph.errors import BadUserInput, Conflict, Forbidden, NotFound
from pictograph.events import Event, PostDeleted, PostFailed, PostReady, ProcessPost
from pictograph.models import MediaVariant, Post, PostStatus, Upload, User
from pictograph.posts import garbage
from pictograph.resources import Resources
from pictograph.storage.signing import all_variant_keys

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
        outbox = await events.record([ProcessPost(post_id=post.id)])
    await _publish_quietly(resources, outbox)
    # The author's own list of posts shows it at once, PROCESSING.
    await effects.account_changed(resources, author_id)
    await effects.now_shown(resources, post_ids=[post.id])
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
        fence = await ResponseCache(resources.redis).fence([viewer_id], [post_id])
        # Only a READY post was ever shown: the removal of any other is nobody's news.
        deleted = PostDeleted(post_id=post_id, author_id=viewer_id,
                              was_ready=post.status == PostStatus.READY)
        outbox = await events.record([deleted])
    await effects.after_commit(resources, [deleted], fence)
    await _publish_quietly(resources, outbox)
    await garbage.collect(resources.storage, trash)


def awaits_processing(post: Post) -> bool:
    return post.status == PostStatus.PROCESSING


async def unfinished_post_ids() -> list[int]:
    """Posts whose photo has not been processed yet."""
    return list(await Post.filter(status=PostStatus.PROCESSING).values_list("id", flat=True))


async def finish_processing(
    resources: Resources, post_id: int, variants: list[dict[str, Any]], failure: str | None,
) -> None:
    """The post READY with its variants, or FAILED with `failure` (a reason its author
    sees): the only way out of PROCESSING. Idempotent: a post no longer PROCESSING is
    left as it is (another delivery of the job finished first)."""
    async with in_transaction():
        locked = await Post.filter(id=post_id).select_for_update().first()
        if locked is None:
            # Deleted while it was processed: what this (or a delivery that died) wrote
            # is nobody's.
            trash = await garbage.discard(all_variant_keys(resources.secret_key, post_id))
            changes: list[Event] = []
        elif not awaits_processing(locked):
            # Another delivery of this job finished first. Its keys are this one's (they
            # derive from the post id), so they must stay.
            trash, changes = [], []
        else:
            await MediaVariant.filter(post_id=post_id).delete()
            for variant in variants:
                await MediaVariant.create(post_id=post_id, **variant)
            status = PostStatus.FAILED if failure else PostStatus.READY
            await Post.filter(id=post_id).update(status=status, failure_reason=failure)
            author_id = locked.author_id  # type: ignore[attr-defined]
            if status == PostStatus.READY:
                await User.filter(id=author_id).update(post_count=F("post_count") + 1)
            # Originals are never served: once processed, the original goes.
            upload = await Upload.get(id=locked.upload_id)
            trash = await garbage.discard_original(upload)
            if failure:
                # A delivery that died or gave up mid-way may have stored some variants.
                trash += await garbage.discard(all_variant_keys(resources.secret_key, post_id))
            changes = [PostReady(post_id=post_id, author_id=author_id) if not failure
                       else PostFailed(post_id=post_id, author_id=author_id)]
        outbox = await events.record(changes)
    await effects.after_commit(resources, changes)
    await events.publish(resources.redis, outbox)
    await garbage.collect(resources.storage, trash)
    log.info("post %s processed: %s", post_id, failure or "ready")


async def give_up_processing(resources: Resources, post_id: int) -> None:
    """The job failed for good (its tries used up): the post FAILED, if still waiting."""
    post = await Post.get_or_none(id=post_id)
    if post is not None and awaits_processing(post):
        await finish_processing(resources, post_id, [],
                                "the photo could not be processed; post it again")


async def _publish_quietly(resources: Resources, outbox: list) -> None:
    try:
        await events.publish(resources.redis, outbox)
    except Exception:
        log.warning("publishing %d events failed; the outbox relay will retry", len(outbox))

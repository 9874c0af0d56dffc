"""The media worker under crashes, duplicates and poison messages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pictograph import events
from pictograph.cache import keys
from pictograph.models import MediaVariant, Post, PostStatus
from pictograph.posts import lifecycle, processing
from pictograph.posts.processing import process_post
from pictograph.resources import Resources
from pictograph.schema.node import encode_global_id
from pictograph.workers.media import GROUP
from pictograph.workers.streams import StreamConsumer
from tests.support.graphql import sign_up
from tests.support.photos import jpeg, post_photo

STREAM = keys.event_stream(events.MEDIA)


def _consumer(resources: Resources, handler: Any, **options: Any) -> StreamConsumer:
    return StreamConsumer(resources.redis, STREAM, GROUP, handler, resources.metrics,
                          block_ms=1, **options)


async def _handler(resources: Resources, event: Any) -> None:
    await process_post(resources, event.post_id)


async def test_a_crashed_consumers_work_is_taken_over(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    token = await sign_up(client, "author")
    crashed = _consumer(resources, None)
    await crashed.ensure_group()
    result = await post_photo(client, token, jpeg(500, 400))
    assert not result.get("errors")
    # The first consumer reads the job and dies before acknowledging it.
    taken = await resources.redis.xreadgroup(GROUP, crashed.name, {STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 1
    survivor = _consumer(resources, lambda e: _handler(resources, e), claim_idle_ms=0)
    assert await survivor.step() == 1
    post = await Post.get()
    assert post.status == PostStatus.READY
    pending = await resources.redis.xpending(STREAM, GROUP)
    assert pending["pending"] == 0


async def test_duplicate_delivery_changes_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    token = await sign_up(client, "author")
    await post_photo(client, token, jpeg(500, 400))
    post = await Post.get()
    await process_post(resources, post.id)
    variants = await MediaVariant.all().values_list("object_key", "etag")
    await process_post(resources, post.id)  # delivered again
    assert await MediaVariant.all().values_list("object_key", "etag") == variants
    assert (await Post.get()).status == PostStatus.READY
    author = await post.author
    assert author.post_count == 1


async def test_a_message_that_keeps_failing_ends_the_post_failed(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await sign_up(client, "author")
    await post_photo(client, token, jpeg(500, 400))

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("storage hiccup")

    monkeypatch.setattr(processing, "process_post", broken)
    poisoned: list[dict[str, Any]] = []

    async def give_up(event: dict[str, Any]) -> None:
        poisoned.append(event)
        post = await Post.get(id=event.post_id)
        await Post.filter(id=post.id).update(status=PostStatus.FAILED,
                                             failure_reason="could not be processed")

    consumer = _consumer(resources, lambda e: processing.process_post(resources, e),
                         claim_idle_ms=0, max_deliveries=3, on_poison=give_up)
    await consumer.ensure_group()
    for _ in range(3):
        await consumer.step()
    assert len(poisoned) == 1
    assert (await Post.get()).status == PostStatus.FAILED
    assert (await resources.redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_post_deleted_while_processing_leaves_no_objects(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from pictograph.models import StorageGarbage

    token = await sign_up(client, "author")
    await post_photo(client, token, jpeg(500, 400))
    post = await Post.get()
    stale = await Post.get(id=post.id)  # what the worker read before the delete
    await client.post("/graphql", json={
        "query": "mutation($id: ID!) { deletePost(id: $id) }",
        "variables": {"id": encode_global_id("Post", post.id)},
    }, headers={"Authorization": f"Bearer {token}"})
    assert await Post.all().count() == 0
    # The worker finishes its work on the vanished post: its outputs become garbage.
    await lifecycle.finish_processing(resources, stale.id, [
        {"size": "FULL", "object_key": "media/orphan/full.jpg", "width": 1, "height": 1,
         "content_type": "image/jpeg", "byte_size": 1, "etag": "x"}], None)
    assert await StorageGarbage.filter(not_before__isnull=True).count() == 0
    assert await MediaVariant.all().count() == 0


async def test_two_deliveries_racing_keep_the_finished_photo(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    import asyncio

    token = await sign_up(client, "author")
    await post_photo(client, token, jpeg(500, 400))
    post = await Post.get()
    await asyncio.gather(process_post(resources, post.id), process_post(resources, post.id))
    assert (await Post.get()).status == PostStatus.READY
    for key in await MediaVariant.all().values_list("object_key", flat=True):
        assert await resources.storage.size(key)


async def test_an_original_put_again_after_processing_is_swept_later(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from datetime import UTC, datetime, timedelta

    from pictograph.models import StorageGarbage, Upload
    from pictograph.posts import garbage
    from pictograph.workers.storage_sweeper import sweep_storage_once
    from tests.support.photos import CREATE_POST, create_upload, put_bytes

    token = await sign_up(client, "sneaky")
    data = jpeg(300, 200)
    ticket = await create_upload(client, token, data)
    assert await put_bytes(client, ticket, data) == 200
    await client.post("/graphql", json={"query": CREATE_POST,
                                        "variables": {"upload": ticket["uploadId"]}},
                      headers={"Authorization": f"Bearer {token}"})
    await process_post(resources, (await Post.get()).id)
    upload = await Upload.get()
    assert await resources.storage.size(upload.object_key) is None
    # The ticket is still valid: on S3 a client can put the original back.
    await resources.storage.put(upload.object_key, data, "image/jpeg")
    assert await StorageGarbage.all().count() == 1  # the deletion waiting for expiry
    await StorageGarbage.all().update(
        not_before=datetime.now(UTC) - garbage.UPLOAD_GRACE - timedelta(seconds=1)
    )
    await sweep_storage_once(resources)
    assert await resources.storage.size(upload.object_key) is None
    assert await StorageGarbage.all().count() == 0

"""A `pictograph worker` killed with SIGKILL in the middle of a job: another worker
takes the job over (XAUTOCLAIM) and finishes it, once.

"The middle" is made certain, not hoped for, with a lock the test holds in
PostgreSQL: the worker blocks at a known step with its message taken and
unacknowledged, the test sees it waiting there, and kills it."""

from __future__ import annotations

from collections import Counter

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.storage.signing import variant_key
from tests.faults.stack import (
    FANOUT_GROUP,
    FOLLOWS_STREAM,
    MEDIA_GROUP,
    MEDIA_STREAM,
    POSTS_STREAM,
    Stack,
    api_for,
    wait_until,
)
from tests.support.photos import jpeg
from tests.support.processes import serve, worker

FOLLOWERS = 8


async def test_fan_out_killed_midway_is_finished_by_another_worker(stack: Stack) -> None:
    with serve(stack.env, workers=False) as base:
        async with api_for(base) as api:
            author = await api.sign_up("author")
            author_id = await api.user_id("author")
            fans = [await api.sign_up(f"fan{i}") for i in range(FOLLOWERS)]
            fan_ids = [stack.pk(await api.user_id(f"fan{i}")) for i in range(FOLLOWERS)]
            for fan in fans:
                assert not (await api.relate("follow", fan, author_id)).get("errors")

            with worker(stack.env) as first:
                await wait_until(lambda: stack.drained(FOLLOWS_STREAM, FANOUT_GROUP),
                                 "the follow events are applied")
                # Fan-out reads the followers from `follows` after writing the author's
                # own feed: it stops there, half done, until the lock goes.
                async with stack.holding("LOCK TABLE follows IN ACCESS EXCLUSIVE MODE"):
                    post_id = await api.post(author, "fanned out by two workers")
                    post_pk = stack.pk(post_id)

                    async def midway() -> bool:
                        return (await stack.waiting_on_locks() == 1
                                and await stack.pending(POSTS_STREAM, FANOUT_GROUP) == 1)

                    await wait_until(midway, "the fan-out waits with its message taken")
                    author_feed = keys.home_feed(stack.pk(author_id))
                    feeds = FeedCache(stack.redis)
                    assert post_pk in (await feeds.stored_ids(author_feed)).ids
                    for fan in fan_ids:
                        assert post_pk not in (await feeds.stored_ids(keys.home_feed(fan))).ids
                    first.kill()
                    first.wait(10)

            with worker(stack.env):
                async def everyone_has_it() -> bool:
                    held = [post_pk in (await feeds.stored_ids(keys.home_feed(fan))).ids
                            for fan in fan_ids]
                    return all(held) and (
                        await stack.drained(POSTS_STREAM, FANOUT_GROUP))

                # Checked in Redis before any feed is read: a read would rebuild a feed
                # from the database and hide a fan-out that never finished.
                await wait_until(everyone_has_it, "the second worker fans the post out")

            for fan in fans:
                assert Counter(await api.feed(fan))[post_id] == 1


async def test_media_job_killed_midway_is_finished_by_another_worker(stack: Stack) -> None:
    with serve(stack.env, workers=False) as base:
        async with api_for(base) as api:
            author = await api.sign_up("photographer")
            # Queued while no worker runs, so the test can lock the rows first.
            kept = await api.post(author, "kept", jpeg(640, 480))
            deleted = await api.post(author, "deleted while its worker lay dead",
                                     jpeg(640, 480))
            kept_pk, deleted_pk = stack.pk(kept), stack.pk(deleted)
            # The worker stores the variants, then locks the post's row to record them:
            # it stops there, between storage and the database.
            async with stack.holding("SELECT id FROM posts WHERE id = ANY($1) FOR UPDATE",
                                     [kept_pk, deleted_pk]):
                with worker(stack.env) as first:
                    async def midway() -> bool:
                        return (await stack.waiting_on_locks() == 2
                                and await stack.pending(MEDIA_STREAM, MEDIA_GROUP) == 2)

                    await wait_until(midway, "both jobs wait with their messages taken")
                    first.kill()
                    first.wait(10)
            secret = stack.env["PICTOGRAPH_SECRET_KEY"].encode()
            strays = {variant_key(secret, deleted_pk, size, "jpg")
                      for size in ("THUMBNAIL", "FULL")}
            assert strays <= stack.stored_objects()  # written by the dead worker

            # The author deletes a post whose job the dead worker held; its variants
            # are in storage but in no row.
            assert (await api.ok("mutation($id: ID!) { deletePost(id: $id) }",
                                 {"id": deleted}, author))["deletePost"] is True
            broken = await api.post(author, "not a photo", b"\xff\xd8\xff" + b"\x00" * 500)

            with worker(stack.env):
                async def finished() -> bool:
                    statuses = await stack.db.fetch("SELECT status FROM posts")
                    return all(row["status"] in ("READY", "FAILED") for row in statuses) and (
                        await stack.drained(MEDIA_STREAM, MEDIA_GROUP))

                await wait_until(finished, "the second worker finishes every job")

            rows = {row["id"]: row["status"] for row in
                    await stack.db.fetch("SELECT id, status FROM posts")}
            assert rows == {kept_pk: "READY", stack.pk(broken): "FAILED"}
            variants = await stack.db.fetch("SELECT post_id, object_key FROM media_variants")
            assert Counter(row["post_id"] for row in variants) == {kept_pk: 2}
            # Nothing in storage that no row points at: the kept post's variants only
            # (originals are gone once processed, the deleted post's strays collected).
            assert stack.stored_objects() == {row["object_key"] for row in variants}
            data = await api.ok("query($id: ID!) { post(id: $id) { status"
                                " media(size: FULL) { url width } } }", {"id": kept}, author)
            assert data["post"]["status"] == "READY" and data["post"]["media"]["width"] == 640
            async with api.client.stream("GET", data["post"]["media"]["url"]) as photo:
                assert photo.status_code == 200

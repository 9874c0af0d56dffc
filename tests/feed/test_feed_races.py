"""A follower sees every READY post of the authors they follow, once, whatever the
interleaving: re-follows racing an unfollow's cleanup (two consumers, or a read), a post
deleted around its fan-out, an author crossing the celebrity threshold under a cached
page. Each race is forced with checkpoints (pictograph/checkpoints.py), not timing."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pictograph.cache import keys
from pictograph.checkpoints import holding
from pictograph.events import PostDeleted, PostReady
from pictograph.feed import policy
from pictograph.feed.policy import HomeFeed
from pictograph.models import Post
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from pictograph.workers.fanout import apply_event
from tests.support.feeds import consumers, fan_out, feed_captions, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo, process_media
from tests.support.redis_state import flush_caches
from tests.support.relations import follower_of


async def test_an_unfollow_cleanup_held_by_one_consumer_cannot_erase_a_refollow_merged_by_another(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    author_id = await user_id(client, "author")
    await publish(client, resources, author, "kept")
    assert (await feed_captions(client, fan))[0] == ["kept"]  # the stored feed is complete
    await relate_ok(client, "unfollow", fan, author_id)
    [_, first] = consumers(resources)  # the follows stream's consumers, two of them
    [_, second] = consumers(resources)
    async with holding("feed.unmerge_decided") as hold:
        cleanup = asyncio.create_task(first.step())  # takes the unfollow, decides, waits
        async with asyncio.timeout(10):
            await hold.wait_reached()
        await relate_ok(client, "follow", fan, author_id)
        assert await second.step() == 1  # the re-follow's merge, done meanwhile
        hold.release()
        assert await cleanup == 1
    assert (await feed_captions(client, fan))[0] == ["kept"]


async def test_a_feed_read_cannot_clean_out_an_author_followed_again_since_it_looked(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    author_id = await user_id(client, "author")
    await publish(client, resources, author, "kept")
    assert (await feed_captions(client, fan))[0] == ["kept"]
    await relate_ok(client, "unfollow", fan, author_id)
    async with holding("feed.filtered") as hold:
        # The read sees "not following" and holds before cleaning its feed.
        read = asyncio.create_task(feed_captions(client, fan))
        async with asyncio.timeout(10):
            await hold.wait_reached()
        await relate_ok(client, "follow", fan, author_id)
        await fan_out(resources)  # the unfollow's cleanup, then the re-follow's merge
        hold.release()
        assert (await read)[0] == []  # what it saw, as of its graph
    assert (await feed_captions(client, fan))[0] == ["kept"]


async def test_a_post_deleted_before_its_fan_out_leaves_no_id_behind(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    _, author = await follower_of(client, "fan", "author")
    await fan_out(resources)
    created = await post_photo(client, author, jpeg(64, 48), caption="regretted")
    await process_media(resources)
    post_id = created["data"]["createPost"]["id"]
    await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post_id},
              token=author)
    author_pk = decode_id_of(await user_id(client, "author"), "User")
    post_pk = decode_id_of(post_id, "Post")
    feed = HomeFeed(resources)
    # The events handled in the wrong order, as two consumers may.
    await apply_event(feed, PostDeleted(post_id=post_pk, author_id=author_pk))
    await apply_event(feed, PostReady(post_id=post_pk, author_id=author_pk))
    for key in (keys.recent_posts(author_pk), keys.home_feed(author_pk)):
        assert post_pk not in (await feed.cache.stored_ids(key)).ids


async def test_a_post_deleted_during_its_fan_out_leaves_no_id_behind(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    _, author = await follower_of(client, "fan", "author")
    await fan_out(resources)
    created = await post_photo(client, author, jpeg(64, 48), caption="regretted")
    await process_media(resources)
    post_id = created["data"]["createPost"]["id"]
    author_pk = decode_id_of(await user_id(client, "author"), "User")
    post_pk = decode_id_of(post_id, "Post")
    feed = HomeFeed(resources)
    async with holding("feed.push_checked") as hold:
        push = asyncio.create_task(feed.push_to_home(post_pk, author_pk))
        async with asyncio.timeout(10):
            await hold.wait_reached()  # checked READY; about to write
        await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post_id},
                  token=author)
        await apply_event(feed, PostDeleted(post_id=post_pk, author_id=author_pk))
        hold.release()
        await push
    for key in (keys.recent_posts(author_pk), keys.home_feed(author_pk)):
        assert post_pk not in (await feed.cache.stored_ids(key)).ids
    assert not await Post.exists(id=post_pk)


async def test_a_page_cached_before_an_author_became_a_celebrity_shows_their_next_posts(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 2)
    fan, author = await follower_of(client, "fan", "author")
    await publish(client, resources, author, "before")
    assert (await feed_captions(client, fan))[0] == ["before"]  # the first page is cached
    other = await sign_up(client, "other")
    await relate_ok(client, "follow", other, await user_id(client, "author"))  # 2 followers
    await publish(client, resources, author, "crossing")
    assert (await feed_captions(client, fan))[0] == ["crossing", "before"]
    # Past the grace period the author's posts are merged at read time only.
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)
    await publish(client, resources, author, "celebrated")
    assert (await feed_captions(client, fan))[0] == ["celebrated", "crossing", "before"]


async def test_a_rebuild_that_read_the_database_before_redis_lost_a_delivery_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """A rebuild merges into what fan-out added while it read, so nothing is lost, as
    long as Redis keeps those adds. A Redis purged (cache/trust.py) or come back older
    loses them; the rebuild, landing after, must not mark the feed complete without them."""
    fan, author = await follower_of(client, "fan", "author")
    await publish(client, resources, author, "first")
    await flush_caches(resources.redis)  # the fan's next read rebuilds the feed
    async with holding("feed.rebuild_read") as hold:
        read = asyncio.create_task(feed_captions(client, fan))
        async with asyncio.timeout(10):
            await hold.wait_reached()  # it has read the database: "first" only
        await publish(client, resources, author, "second")  # fanned out into the feed
        await flush_caches(resources.redis)  # ... and lost, as by a purge
        hold.release()
        assert (await read)[0] == ["first"]  # what it read
    assert (await feed_captions(client, fan))[0] == ["second", "first"]

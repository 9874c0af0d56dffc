from __future__ import annotations

import httpx
import pytest

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.models import User
from pictograph.resources import Resources
from tests.support.feeds import fan_out, feed_captions, publish
from tests.support.graphql import error_codes, gql, relate_ok, sign_up, user_id
from tests.support.redis_state import flush_caches


async def test_own_and_followed_posts_newest_first(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    me = await sign_up(client, "me_")
    friend = await sign_up(client, "friend")
    stranger = await sign_up(client, "stranger")
    await relate_ok(client, "follow", me, await user_id(client, "friend"))
    await fan_out(resources)
    await publish(client, resources, friend, "f1")
    await publish(client, resources, me, "m1")
    await publish(client, resources, stranger, "s1")
    await publish(client, resources, friend, "f2")
    captions, page = await feed_captions(client, me)
    assert captions == ["f2", "m1", "f1"]
    assert page["hasNextPage"] is False
    assert error_codes(await gql(client, "{ feed { edges { cursor } } }")) == ["UNAUTHENTICATED"]


async def test_pages_neither_repeat_nor_skip_while_posts_arrive(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    me = await sign_up(client, "reader")
    author = await sign_up(client, "writer")
    await relate_ok(client, "follow", me, await user_id(client, "writer"))
    for i in range(5):
        await publish(client, resources, author, f"p{i}")
    first, page = await feed_captions(client, me, first=2)
    assert first == ["p4", "p3"] and page["hasNextPage"]
    await publish(client, resources, author, "new")
    second, page = await feed_captions(client, me, first=2, after=page["endCursor"])
    assert second == ["p2", "p1"]
    third, page = await feed_captions(client, me, first=2, after=page["endCursor"])
    assert third == ["p0"] and not page["hasNextPage"]
    fresh, _ = await feed_captions(client, me, first=2)
    assert fresh == ["new", "p4"]


async def test_following_backfills_and_unfollowing_is_instant(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    me = await sign_up(client, "follower")
    author = await sign_up(client, "prolific")
    for i in range(3):
        await publish(client, resources, author, f"old{i}")
    assert (await feed_captions(client, me))[0] == []
    await relate_ok(client, "follow", me, await user_id(client, "prolific"))
    await fan_out(resources)
    assert (await feed_captions(client, me))[0] == ["old2", "old1", "old0"]
    # No worker runs between the unfollow and the read.
    await relate_ok(client, "unfollow", me, await user_id(client, "prolific"))
    assert (await feed_captions(client, me))[0] == []
    await fan_out(resources)  # the cleanup that follows changes nothing visible
    assert (await feed_captions(client, me))[0] == []


@pytest.mark.parametrize("how", ["removeFollower", "block"])
async def test_removal_and_block_empty_the_feed_at_once(
    client: httpx.AsyncClient, resources: Resources, how: str
) -> None:
    me = await sign_up(client, "fan")
    author = await sign_up(client, "idol")
    await relate_ok(client, "follow", me, await user_id(client, "idol"))
    await publish(client, resources, author, "hello")
    assert (await feed_captions(client, me))[0] == ["hello"]
    await relate_ok(client, how, author, await user_id(client, "fan"))
    assert (await feed_captions(client, me))[0] == []


async def test_deleted_posts_leave_the_next_read(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    me = await sign_up(client, "viewer")
    author = await sign_up(client, "deleter")
    await relate_ok(client, "follow", me, await user_id(client, "deleter"))
    post = await publish(client, resources, author, "soon gone")
    await publish(client, resources, author, "stays")
    assert (await feed_captions(client, me))[0] == ["stays", "soon gone"]
    await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post}, token=author)
    assert (await feed_captions(client, me))[0] == ["stays"]


async def test_a_flushed_redis_rebuilds_the_same_feed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    me = await sign_up(client, "survivor")
    authors = [await sign_up(client, f"author{i}") for i in range(3)]
    for i in range(len(authors)):
        await relate_ok(client, "follow", me, await user_id(client, f"author{i}"))
    await fan_out(resources)
    for round_ in range(2):
        for i, token in enumerate(authors):
            await publish(client, resources, token, f"{round_}-{i}")
    before = await feed_captions(client, me)
    await flush_caches(resources.redis)
    assert await feed_captions(client, me) == before
    survivor = await User.get(username="survivor")
    stored = await FeedCache(resources.redis).stored_ids(keys.home_feed(survivor.id))
    assert stored.complete


async def test_duplicate_delivery_adds_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from pictograph.events import PostReady
    from pictograph.feed.policy import HomeFeed
    from pictograph.models import Post
    from pictograph.workers.fanout import apply_event

    me = await sign_up(client, "twice")
    author = await sign_up(client, "once")
    await relate_ok(client, "follow", me, await user_id(client, "once"))
    await publish(client, resources, author, "only once")
    post = await Post.get()
    feed = HomeFeed(resources)
    for _ in range(3):
        await apply_event(feed, PostReady(post_id=post.id,
                                          author_id=post.author_id))  # type: ignore[attr-defined]
    assert (await feed_captions(client, me))[0] == ["only once"]


async def test_a_feed_left_in_the_old_format_is_ignored_and_rebuilt_from_the_database(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Upgrading from sorted-set feeds (feed:{id}, recent:{id}): their keys are left to
    expire, and the first read rebuilds the packed feed from posts and follows."""
    me = await sign_up(client, "upgraded")
    author = await sign_up(client, "author")
    await relate_ok(client, "follow", me, await user_id(client, "author"))
    await fan_out(resources)
    await publish(client, resources, author, "before the upgrade")
    viewer = await User.get(username="upgraded")
    writer = await User.get(username="author")
    await flush_caches(resources.redis)
    # What the old version left: a feed and recent list naming a post that is not there.
    await resources.redis.zadd(f"feed:{{{viewer.id}}}", {"~": 0, "123456789": 123456789})
    await resources.redis.zadd(f"recent:{{{writer.id}}}", {"~": 0, "123456789": 123456789})
    captions, _ = await feed_captions(client, me)
    assert captions == ["before the upgrade"]
    stored = await FeedCache(resources.redis).stored_ids(keys.home_feed(viewer.id))
    assert stored.complete and len(stored.ids) == 1

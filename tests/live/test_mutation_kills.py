"""The live filter (resolvers/live.py) where the other live tests do not reach: what a
subscription remembers having said, a RESYNC from the hub, and how much of an author
leaves with an unfollow. Each test kills mutants that survived mutation/run.py."""

from __future__ import annotations

import httpx
import pytest

from pictograph.accounts.sessions import hash_token, token_key
from pictograph.cache import tokens as token_cache
from pictograph.cache.pubsub import RESYNC
from pictograph.context import Context
from pictograph.live import publish as live
from pictograph.resolvers import live as live_filter
from pictograph.resources import Resources
from pictograph.schema import build_schema
from pictograph.schema.node import decode_id_of
from tests.support.feeds import publish
from tests.support.graphql import relate_ok, user_id
from tests.support.relations import follower_of
from tests.support.subscriptions import added, subscribed


async def test_a_subscription_says_each_post_once_while_it_remembers_it(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_filter, "SAID_REMEMBERED", 2)
    fan, author = await follower_of(client, "fan", "author")
    a, b, c = [decode_id_of(await publish(client, resources, author, caption), "Post")
               for caption in ("a", "b", "c")]
    async with subscribed(resources, fan, await user_id(client, "fan")) as updates:
        await updates.send(added(a), added(b), added(a), added(b))
        assert await updates.said() == [("POST_ADDED", a), ("POST_ADDED", b)]
        # A third post: the oldest is forgotten, so it is said again (the bound is what
        # keeps a long-lived subscription's memory small), the newer one still is not.
        await updates.send(added(c), added(b), added(a))
        assert await updates.said() == [("POST_ADDED", c), ("POST_ADDED", a)]
        # A removal forgets the post: if it comes back, it is said again.
        await updates.send({"kind": live.POST_REMOVED, "post_id": c}, added(c))
        assert await updates.said() == [("POST_REMOVED", c), ("POST_ADDED", c)]


async def test_a_resync_checks_the_token_again_and_goes_on_while_it_holds(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    post = decode_id_of(await publish(client, resources, author, "after"), "Post")
    async with subscribed(resources, fan, await user_id(client, "fan")) as updates:
        await updates.send({"kind": RESYNC}, added(post))
        assert await updates.said() == [("POST_ADDED", post)]
        # Revoked while the hub was away: no REVOKED message came, the RESYNC finds out.
        await token_cache.mark_revoked(resources.redis, token_key(fan), 3600)
        await updates.send({"kind": RESYNC})
        assert await updates.ending() == ["UNAUTHENTICATED"]


async def test_a_follow_keeps_the_subscription_listening_to_its_viewer_and_token(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """A follow makes the subscription look again at which celebrities to listen to;
    it must not stop listening to anything else."""
    fan, author = await follower_of(client, "fan", "author")
    other = decode_id_of(await publish(client, resources, author, "first"), "Post")
    async with subscribed(resources, fan, await user_id(client, "fan")) as updates:
        await updates.send({"kind": live.GRAPH_CHANGED, "author_id": 0})
        assert await updates.said() == []
        await updates.send(added(other))
        assert await updates.said() == [("POST_ADDED", other)]
        await live.token_revoked(resources.redis, hash_token(fan))
        assert await updates.ending() == ["UNAUTHENTICATED"]


async def test_a_subscription_without_a_token_is_refused(resources: Resources) -> None:
    stream = await build_schema().subscribe(
        "subscription { feedUpdates { kind } }",
        context_value=Context(resources, None, None, "req-live-kills"))
    first = await anext(stream)
    assert [error.extensions["code"] for error in first.errors] == ["UNAUTHENTICATED"]


async def test_an_unfollow_says_the_author_s_newest_posts_leave(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    author_id = await user_id(client, "author")
    # 50, written out: the constant itself is what this test holds to its value.
    posts = [decode_id_of(await publish(client, resources, author, f"{n}"), "Post")
             for n in range(51)]
    newest = sorted(posts, reverse=True)[:50]
    async with subscribed(resources, fan, await user_id(client, "fan")) as updates:
        # Followed again before the message is read: nothing leaves.
        gone = {"kind": live.AUTHOR_GONE, "author_id": decode_id_of(author_id, "User")}
        await updates.send(gone)
        assert await updates.said() == []
        await relate_ok(client, "unfollow", fan, author_id)
        said = await updates.said()
        assert sorted(said) == sorted(("POST_REMOVED", post) for post in newest)

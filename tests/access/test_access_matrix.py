"""Every path that can reveal a post or its photo, for every relation a viewer can be in,
read the moment a relation ends or the author goes private: no worker runs between the
change and the reads, and every cache was warmed just before the change.

The paths: Query.feed, User.posts, Query.post, Query.node, the Post.media field on each of
them, a /media URL minted earlier, and the feedUpdates subscription receiving a post that
was fanned out before the change but delivered after it. The expected answers come from
the relation table in tests/support/relations.py; the test fails on a leak and on a
viewer who does not see what they should.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pictograph.cache import keys
from pictograph.cache.pubsub import listened
from pictograph.context import Context
from pictograph.live import publish as live
from pictograph.records import MediaSize
from pictograph.resources import Resources
from pictograph.schema import build_schema
from pictograph.schema.node import decode_id_of, encode_global_id
from pictograph.storage.signing import media_url
from tests.support.feeds import publish
from tests.support.graphql import error_codes, gql, sign_up, user_id
from tests.support.photos import fetch
from tests.support.relations import EXPECTED, approach, depart, make_private

# "made_private": public while every relation is set up and every cache warmed, then
# private just before the reads.
PRIVACIES = ("public", "private", "made_private")
SENTINEL_POST = 1  # a removal of a post that never existed marks the end of a delivery

FEED = "{ feed(first: 50) { edges { node { id media(size: THUMBNAIL) { url } } } } }"
READ = """query($u: String!, $id: ID!) {
  user(username: $u) { posts(first: 50) { edges { node { id media(size: THUMBNAIL) { url } } } } }
  post(id: $id) { id media(size: FULL) { url } }
  node(id: $id) { id ... on Post { media(size: THUMBNAIL) { url } } }
}"""
FEED_UPDATES = """subscription {
  feedUpdates { kind postId post { id media(size: THUMBNAIL) { url } } }
}"""


@dataclass
class Viewer:
    state: str
    token: str | None
    id: str | None
    url: str | None = None  # a /media URL for the photo, taken before the change
    stream: AsyncGenerator[Any, None] | None = None
    next_update: asyncio.Task[Any] | None = None
    seen: dict[str, bool] = field(default_factory=dict)


def expected(state: str, privacy: str) -> dict[str, bool]:
    _, posts, media, _ = EXPECTED[state]["public" if privacy == "public" else "private"]
    feed = posts and state in ("self", "following")
    paths = {"feed": feed, "user.posts": posts, "post": posts, "node": posts,
             "subscription": feed}
    paths |= {f"{path}.media": shown and media for path, shown in paths.items()}
    if state != "anonymous":  # nobody to mint a URL for
        paths["/media"] = media
    return paths


def states_for(privacy: str) -> list[str]:
    start = "private" if privacy == "private" else "public"
    return [state for state, by_privacy in EXPECTED.items() if start in by_privacy]


@pytest.mark.parametrize("privacy", PRIVACIES)
async def test_no_path_reveals_more_than_the_relation_allows(
    client: httpx.AsyncClient, resources: Resources, privacy: str
) -> None:
    author = await sign_up(client, "author")
    author_id = await user_id(client, "author")
    if privacy == "private":
        await make_private(client, author)
    viewers = [await _viewer(client, state, author, author_id) for state in states_for(privacy)]
    post_id = await publish(client, resources, author, "the photo")  # READY, fanned out

    try:
        if privacy == "made_private":
            for viewer in viewers:
                await _depart(client, viewer, author, author_id)
            for viewer in viewers:
                await _warm(client, resources, viewer, post_id)
            await make_private(client, author)
            for viewer in viewers:
                await _read_every_path(client, resources, viewer, post_id)
        else:
            for viewer in viewers:
                await _warm(client, resources, viewer, post_id)
                await _depart(client, viewer, author, author_id)
                await _read_every_path(client, resources, viewer, post_id)
    finally:
        for viewer in viewers:
            await _stop_listening(viewer)

    wrong = [f"{viewer.state} {path}: expected {shown}, got {viewer.seen.get(path)}"
             for viewer in viewers
             for path, shown in expected(viewer.state, privacy).items()
             if viewer.seen.get(path) is not shown]
    assert not wrong, "\n".join(wrong)


async def _viewer(client: httpx.AsyncClient, state: str, author: str, author_id: str) -> Viewer:
    if state == "self":
        return Viewer(state, author, author_id)
    if state == "anonymous":
        return Viewer(state, None, None)
    token = await sign_up(client, f"v_{state}")
    viewer = Viewer(state, token, await user_id(client, f"v_{state}"))
    await approach(client, state, author, author_id, token, viewer.id)
    return viewer


async def _depart(client: httpx.AsyncClient, viewer: Viewer, author: str, author_id: str
                  ) -> None:
    if viewer.token is not None and viewer.id is not None:
        await depart(client, viewer.state, author, author_id, viewer.token, viewer.id)


async def _warm(client: httpx.AsyncClient, resources: Resources, viewer: Viewer,
                post_id: str) -> None:
    """Reads every path once, so that caches hold the answer from before the change;
    keeps a media URL and opens the live subscription."""
    await gql(client, FEED, token=viewer.token)
    result = await gql(client, READ, {"u": "author", "id": post_id}, token=viewer.token)
    if viewer.id is None:
        return
    media = (result["data"]["post"] or {}).get("media")
    # A viewer who may not see the photo now gets a URL signed with the app's own key:
    # a valid signature alone must not be enough.
    viewer.url = media["url"] if media else _signed_url(resources, viewer.id, post_id)
    assert viewer.token is not None
    viewer.stream = await build_schema().subscribe(
        FEED_UPDATES, context_value=Context(resources, None, viewer.token, "req-access"))
    viewer.next_update = asyncio.ensure_future(anext(viewer.stream))
    await _until_listening(resources, viewer.id)


async def _read_every_path(client: httpx.AsyncClient, resources: Resources, viewer: Viewer,
                           post_id: str) -> None:
    seen = viewer.seen
    feed = await gql(client, FEED, token=viewer.token)
    if viewer.token is None:
        assert error_codes(feed) == ["UNAUTHENTICATED"]
        seen["feed"] = seen["feed.media"] = False
    else:
        assert not feed.get("errors"), feed
        _note(seen, "feed", _edge(feed["data"]["feed"], post_id))

    result = await gql(client, READ, {"u": "author", "id": post_id}, token=viewer.token)
    assert not result.get("errors"), result
    data = result["data"]
    _note(seen, "user.posts", _edge(data["user"]["posts"], post_id) if data["user"] else None)
    _note(seen, "post", data["post"])
    _note(seen, "node", data["node"])

    if viewer.url is not None:
        status = (await fetch(client, viewer.url)).status_code
        assert status in (200, 403), status
        seen["/media"] = status == 200
    await _read_subscription(resources, viewer, post_id)


async def _read_subscription(resources: Resources, viewer: Viewer, post_id: str) -> None:
    """Delivers, after the change, the post as a fan-out from before it would, then the
    sentinel; whatever the subscription yields up to the sentinel is what it revealed."""
    if viewer.token is None:  # refused at once
        stream = await build_schema().subscribe(
            FEED_UPDATES, context_value=Context(resources, None, None, "req-access"))
        first = await anext(stream)
        assert [error.extensions["code"] for error in first.errors] == ["UNAUTHENTICATED"]
        viewer.seen["subscription"] = viewer.seen["subscription.media"] = False
        return
    assert viewer.id is not None and viewer.stream is not None
    viewer_pk = decode_id_of(viewer.id, "User")
    post_pk = decode_id_of(post_id, "Post")
    await live.to_viewers(resources.redis, [viewer_pk], {
        "kind": live.POST_ADDED, "post_id": post_pk, "author_id": 0})
    await live.to_viewers(resources.redis, [viewer_pk], {
        "kind": live.POST_REMOVED, "post_id": SENTINEL_POST, "author_id": 0})
    added = None
    sentinel = encode_global_id("Post", SENTINEL_POST)
    while viewer.next_update is not None:
        result = await asyncio.wait_for(viewer.next_update, 10)
        assert not result.errors, result.errors
        update = result.data["feedUpdates"]
        if update["kind"] == "POST_ADDED" and update["postId"] == post_id:
            added = update["post"]
        finished = update["kind"] == "POST_REMOVED" and update["postId"] == sentinel
        viewer.next_update = None if finished else asyncio.ensure_future(anext(viewer.stream))
    _note(viewer.seen, "subscription", added)


async def _stop_listening(viewer: Viewer) -> None:
    if viewer.next_update is not None:
        viewer.next_update.cancel()
        await asyncio.gather(viewer.next_update, return_exceptions=True)
    if viewer.stream is not None:
        await viewer.stream.aclose()


async def _until_listening(resources: Resources, viewer_id: str) -> None:
    """Redis has the subscription's channel: a message published now reaches it."""
    channel = keys.live_viewer(decode_id_of(viewer_id, "User"))
    for _ in range(1000):
        if (await listened(resources.redis, channel))[0]:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the subscription never listened on {channel}")


def _signed_url(resources: Resources, viewer_id: str, post_id: str) -> str:
    return media_url(resources.settings.public_base_url, resources.secret_key,
                     decode_id_of(viewer_id, "User"), decode_id_of(post_id, "Post"),
                     MediaSize.THUMBNAIL, int(time.time()) + 300)


def _edge(connection: dict[str, Any], post_id: str) -> dict[str, Any] | None:
    return next((edge["node"] for edge in connection["edges"] if edge["node"]["id"] == post_id),
                None)


def _note(seen: dict[str, bool], path: str, node: dict[str, Any] | None) -> None:
    seen[path] = node is not None
    seen[f"{path}.media"] = bool(node and node.get("media") and node["media"]["url"])

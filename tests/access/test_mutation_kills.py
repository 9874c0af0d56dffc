"""What visibility.py decides in the corners the access matrix does not reach: posts that
are not READY, and relations that point from the owner to the viewer. Each test here
kills mutants that survived the mutation run (mutation/run.py); see
mutation/equivalent.md for the ones no test can kill."""

from __future__ import annotations

import time

import httpx

from pictograph.records import MediaSize
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of, encode_global_id
from pictograph.storage.signing import media_url
from tests.support.feeds import fan_out, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import fetch, jpeg, post_photo, process_media
from tests.support.relations import make_private
from tests.support.subscriptions import added, subscribed

READ = """query($u: String!, $id: ID!) {
  user(username: $u) { posts(first: 50) { edges { node { id status } } } }
  post(id: $id) { id status }
  node(id: $id) { id }
}"""
FEED = "{ feed(first: 50) { edges { node { id } } } }"
PHOTO = "query($id: ID!) { post(id: $id) { id media(size: THUMBNAIL) { url } } }"
RELATION = """query($u: String!) {
  user(username: $u) { followsViewer viewerFollowStatus
                       posts(first: 50) { edges { node { id } } } }
}"""


async def shown(client: httpx.AsyncClient, token: str | None, post_id: str) -> set[str]:
    """The paths on which the post is shown to the token's user."""
    data = (await gql(client, READ, {"u": "author", "id": post_id}, token=token))["data"]
    paths = set()
    if data["user"] and any(e["node"]["id"] == post_id for e in data["user"]["posts"]["edges"]):
        paths.add("user.posts")
    paths |= {path for path in ("post", "node") if data[path]}
    if token is not None:
        feed = (await gql(client, FEED, token=token))["data"]["feed"]["edges"]
        if any(e["node"]["id"] == post_id for e in feed):
            paths.add("feed")
    return paths


async def announced(resources: Resources, token: str, viewer_id: str,
                    post_ids: list[str]) -> list[str]:
    """What a feedUpdates subscription passes on of a POST_ADDED for each post (as a
    fan-out or a late delivery would send it)."""
    async with subscribed(resources, token, viewer_id) as updates:
        await updates.send(*[added(decode_id_of(post_id, "Post")) for post_id in post_ids])
        return [encode_global_id("Post", post) for _, post in await updates.said()]


async def test_a_post_that_is_not_ready_is_shown_to_its_author_alone(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "author")
    author_id = await user_id(client, "author")
    fan = await sign_up(client, "fan")
    fan_id = await user_id(client, "fan")
    stranger = await sign_up(client, "stranger")
    await relate_ok(client, "follow", fan, author_id)

    ready = await post_photo(client, author, jpeg(64, 48), caption="ready")
    failed = await post_photo(client, author, b"\x00" * 2048, caption="failed")
    failed_id = failed["data"]["createPost"]["id"]
    await process_media(resources)
    ready_id = ready["data"]["createPost"]["id"]
    # Posted after the media worker ran: it stays PROCESSING.
    pending = await post_photo(client, author, jpeg(64, 48), caption="still processing")
    pending_id = pending["data"]["createPost"]["id"]
    await fan_out(resources)

    statuses = (await gql(client, READ, {"u": "author", "id": failed_id}, token=author))
    assert statuses["data"]["post"]["status"] == "FAILED"
    assert (await gql(client, READ, {"u": "author", "id": pending_id}, token=author)
            )["data"]["post"]["status"] == "PROCESSING"
    assert await shown(client, author, failed_id) == {"user.posts", "post", "node"}
    assert await shown(client, author, pending_id) == {"user.posts", "post", "node"}
    for viewer in (fan, stranger, None):
        for post_id in (failed_id, pending_id):
            assert await shown(client, viewer, post_id) == set(), (viewer, post_id)
    # A live message about a post that is not READY tells its author's followers nothing,
    # nor its author (whose feed holds only READY posts).
    # The READY post is shown and announced as usual: what hides the others is their status.
    assert await shown(client, fan, ready_id) == {"user.posts", "post", "node", "feed"}
    everything = [failed_id, pending_id, ready_id]
    assert await announced(resources, fan, fan_id, everything) == [ready_id]
    assert await announced(resources, author, author_id, everything) == [ready_id]


async def test_a_private_account_that_follows_the_viewer_shows_them_no_posts(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The owner follows the viewer, who does not follow back: the relation points the
    other way, so the owner's posts stay hidden (issue 21's plain leak)."""
    owner = await sign_up(client, "author")
    owner_id = await user_id(client, "author")
    viewer = await sign_up(client, "viewer")
    viewer_id = await user_id(client, "viewer")
    await make_private(client, owner)
    await relate_ok(client, "follow", owner, viewer_id)
    post_id = await publish(client, resources, owner, "private")

    assert await shown(client, viewer, post_id) == set()
    relation = (await gql(client, RELATION, {"u": "author"}, token=viewer))["data"]["user"]
    assert relation == {"followsViewer": True, "viewerFollowStatus": "NONE",
                        "posts": {"edges": []}}
    assert await announced(resources, viewer, viewer_id, [post_id]) == []
    # Following back (approved) opens them, and the other way round says so too.
    await relate_ok(client, "follow", viewer, owner_id)
    await relate_ok(client, "approveFollowRequest", owner, viewer_id)
    assert await shown(client, viewer, post_id) == {"user.posts", "post", "node"}
    mine = (await gql(client, RELATION, {"u": "viewer"}, token=owner))["data"]["user"]
    assert (mine["followsViewer"], mine["viewerFollowStatus"]) == (True, "FOLLOWING")


async def test_follows_viewer_is_said_of_a_follower_only(
    client: httpx.AsyncClient
) -> None:
    owner = await sign_up(client, "author")
    viewer = await sign_up(client, "viewer")
    viewer_id = await user_id(client, "viewer")

    async def follows_viewer(token: str, username: str) -> bool:
        data = (await gql(client, RELATION, {"u": username}, token=token))["data"]
        return data["user"]["followsViewer"]

    assert not await follows_viewer(viewer, "author")
    assert not await follows_viewer(owner, "author")  # never of oneself
    await relate_ok(client, "follow", owner, viewer_id)
    assert await follows_viewer(viewer, "author")
    assert not await follows_viewer(owner, "viewer")  # the viewer follows nobody


async def test_a_photo_is_not_shown_to_a_stranger_who_signed_up_first(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Ids grow with time: a viewer older than the author has the smaller id, which no
    relation in the access matrix has (its viewers all sign up after the author)."""
    stranger = await sign_up(client, "stranger")
    stranger_id = await user_id(client, "stranger")
    author = await sign_up(client, "author")
    post_id = await publish(client, resources, author, "public")
    seen = (await gql(client, PHOTO, {"id": post_id}, token=stranger))["data"]["post"]
    assert seen == {"id": post_id, "media": None}  # a public post; its photo is not
    url = media_url("", resources.secret_key, decode_id_of(stranger_id, "User"),
                    decode_id_of(post_id, "Post"), MediaSize.THUMBNAIL, int(time.time()) + 60)
    assert (await fetch(client, url)).status_code == 403
    assert (await gql(client, PHOTO, {"id": post_id}, token=author)
            )["data"]["post"]["media"] is not None

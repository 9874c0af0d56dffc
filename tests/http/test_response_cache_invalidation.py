"""What each change invalidates in the response cache (issue 22): a delivery to a
viewer's home feed ends only the viewer's answers that read the feed; every revocation
reaches the next read, an ordinary author's or a celebrity's; a celebrity's new post is
in every follower's next feed read, with a write cost that does not grow with them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

from pictograph.cache import responses
from pictograph.feed import policy
from pictograph.resources import Resources
from tests.support.feeds import FEED, fan_out, feed_captions, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo, process_media
from tests.support.redis_counter import count_redis
from tests.support.relations import make_private

PROFILE = """query($name: String!) { user(username: $name) {
  username bio followerCount posts(first: 10) { edges { node { caption } } } } }"""
POST = "query($id: ID!) { post(id: $id) { caption } }"
REVOCATIONS = ("unfollow", "removeFollower", "block", "private", "deletePost", "logOut")


def hits(resources: Resources) -> float:
    return resources.metrics.response_cache.labels("hit")._value.get()


async def read(client: httpx.AsyncClient, query: str, token: str,
               variables: dict[str, str] | None = None) -> str:
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.text


async def cached(client: httpx.AsyncClient, resources: Resources, query: str, token: str,
                 variables: dict[str, str] | None = None) -> str:
    """The answer, read until the response cache answers it (a first read of a username
    is not stored: nothing would tell it the name was taken)."""
    first = await read(client, query, token, variables)
    assert await read(client, query, token, variables) == first
    before = hits(resources)
    assert await read(client, query, token, variables) == first
    assert hits(resources) == before + 1, "the repeat was not answered from the cache"
    return first


def celebrities(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every author a celebrity, merged at read time from its first post on."""
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 1)
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)


async def test_a_feed_delivery_leaves_the_viewers_cached_profile_a_hit(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    viewer = await sign_up(client, "viewer")
    author = await sign_up(client, "author")
    await sign_up(client, "neighbour")
    await relate_ok(client, "follow", viewer, await user_id(client, "author"))
    await cached(client, resources, FEED, viewer, {"first": 10})
    profile = await cached(client, resources, PROFILE, viewer, {"name": "neighbour"})
    await publish(client, resources, author, "delivered")  # fanned out to the viewer
    before = hits(resources)
    assert await read(client, PROFILE, viewer, {"name": "neighbour"}) == profile
    assert hits(resources) == before + 1  # the delivery left it cached
    assert (await feed_captions(client, viewer))[0] == ["delivered"]  # and the feed fresh


@pytest.mark.parametrize("celebrity", [False, True], ids=["ordinary", "celebrity"])
@pytest.mark.parametrize("revocation", REVOCATIONS)
async def test_every_revocation_reaches_the_next_read(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    revocation: str, celebrity: bool,
) -> None:
    """The viewer's feed, the author's profile and the post, each answered from the cache
    with the post in it; the revocation returns; the next read shows nothing of it. (On a
    cluster the process holds copies of the epochs for a second here, not a tenth: a
    revocation that returned before its fence's copies lapsed fails this every time.)"""
    monkeypatch.setattr(responses, "EPOCH_LEASE", 1.0)
    if celebrity:
        celebrities(resources, monkeypatch)
    author = await sign_up(client, "author")
    follower = await sign_up(client, "follower")
    stranger = await sign_up(client, "stranger")
    author_id, follower_id = await user_id(client, "author"), await user_id(client, "follower")
    await relate_ok(client, "follow", follower, author_id)
    caption = f"taken-away-by-{revocation}"
    post_id = await publish(client, resources, author, caption)
    # Going private takes the post from strangers; everything else from the follower.
    viewer = stranger if revocation == "private" else follower
    reads = [(PROFILE, {"name": "author"}), (POST, {"id": post_id})]
    if viewer == follower:
        reads.append((FEED, {"first": 10}))
    for query, variables in reads:
        assert caption in await cached(client, resources, query, viewer, variables)

    if revocation in ("unfollow", "block"):
        actor, other = (follower, author_id) if revocation == "unfollow" else (
            author, follower_id)
        await relate_ok(client, revocation, actor, other)
    elif revocation == "removeFollower":
        await relate_ok(client, "removeFollower", author, follower_id)
    elif revocation == "private":
        await make_private(client, author)
    elif revocation == "deletePost":
        result = await gql(client, "mutation($id: ID!) { deletePost(id: $id) }",
                           {"id": post_id}, token=author)
        assert not result.get("errors"), result
    else:
        assert not (await gql(client, "mutation { logOut }", token=follower)).get("errors")

    # An unfollow or removal leaves a public author's profile and post visible, as a
    # logOut leaves them to the token (read anonymously): the feed is what they take
    # away. Everything else takes the post from every read.
    gone = [(FEED, {"first": 10})] if revocation in (
        "unfollow", "removeFollower", "logOut") else reads
    for query, variables in gone:
        answer = await read(client, query, viewer, variables)
        assert caption not in answer, (revocation, query, answer)


async def test_a_celebritys_post_is_in_every_followers_next_read_at_a_cost_that_does_not_grow(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is written per follower: the post moves the celebrity's epoch, which every
    follower's cached feed recorded, so the next read renders it, with no worker to wait
    for. The same Redis commands whether the celebrity has one follower or four."""
    celebrities(resources, monkeypatch)
    costs = []
    for star, crowd in (("small", 1), ("large", 4)):
        star_token = await sign_up(client, star)
        star_id = await user_id(client, star)
        fans = [await sign_up(client, f"{star}_fan{n}") for n in range(crowd)]
        for fan in fans:
            await relate_ok(client, "follow", fan, star_id)
        await publish(client, resources, star_token, f"{star} first")  # a celebrity now
        for fan in fans:
            assert f"{star} first" in await cached(client, resources, FEED, fan, {"first": 10})
        posted = await post_photo(client, star_token, jpeg(64, 48), caption=f"{star} news")
        assert not posted.get("errors"), posted
        with count_redis(monkeypatch) as sent:
            await process_media(resources)  # READY, then its effects
            await fan_out(resources)  # the fan-out worker's share
        costs.append(sent.commands)
        for fan in fans:
            assert (await feed_captions(client, fan))[0] == [f"{star} news", f"{star} first"]
    assert costs[0] == costs[1], costs


@pytest.mark.parametrize("celebrity", [False, True], ids=["ordinary", "celebrity"])
async def test_a_new_follower_ends_the_answers_showing_counts_not_the_feeds_showing_posts(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    celebrity: bool,
) -> None:
    """A follow moves the pair's follows epochs, which only answers that show their
    follower or following counts or lists recorded: a fan's cached feed of the author's
    posts stays a hit, a stranger's cached profile of the author shows the new count."""
    if celebrity:
        celebrities(resources, monkeypatch)
    author = await sign_up(client, "author")
    fan = await sign_up(client, "fan")
    stranger = await sign_up(client, "stranger")
    newcomer = await sign_up(client, "newcomer")
    author_id = await user_id(client, "author")
    await relate_ok(client, "follow", fan, author_id)
    await publish(client, resources, author, "shown")
    feed = await cached(client, resources, FEED, fan, {"first": 10})
    assert '"followerCount":1' in await cached(client, resources, PROFILE, stranger,
                                               {"name": "author"})
    await relate_ok(client, "follow", newcomer, author_id)
    await fan_out(resources)  # the follow's merge writes the newcomer's feed alone
    before = hits(resources)
    assert await read(client, FEED, fan, {"first": 10}) == feed
    assert hits(resources) == before + 1
    if isinstance(resources.redis, RedisCluster):
        # A count may lag by the epochs' lease there (a follow takes nothing away, so
        # it does not wait for the copies to lapse: cache/responses.py).
        await asyncio.sleep(responses.EPOCH_LEASE)
    assert '"followerCount":2' in await read(client, PROFILE, stranger, {"name": "author"})

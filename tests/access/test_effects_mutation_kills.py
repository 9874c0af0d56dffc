"""effects.py where the other tests do not reach it: a change to what is shown of an
account that Redis cannot spread to the caches. Each test kills mutants that survived
mutation/run.py."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.cache.users import ProfileCache
from pictograph.feed import policy
from pictograph.resources import Resources
from tests.support.feeds import feed_captions, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo
from tests.support.relations import follower_of

BIO = 'mutation { updateProfile(input: {bio: "new"}) { bio } }'
COUNTS = '{ user(username: "author") { followerCount followingCount } }'


async def counts(client: httpx.AsyncClient, token: str) -> tuple[int, int]:
    user = (await gql(client, COUNTS, token=token))["data"]["user"]
    return user["followerCount"], user["followingCount"]


async def redis_fails(*_: object, **__: object) -> None:
    raise RedisConnectionError("redis went away")


async def test_a_change_the_caches_miss_after_its_commit_is_still_reported_done(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bio is no revocation: once committed, a Redis that fails afterwards does not fail
    the mutation (the caches age out: README, "What each change invalidates"). A new post
    is shown by its own list anyway, so createPost succeeds too."""
    token = await sign_up(client, "author")
    monkeypatch.setattr(ProfileCache, "forget", redis_fails)
    result = await gql(client, BIO, token=token)
    assert not result.get("errors"), result
    assert result["data"]["updateProfile"]["bio"] == "new"
    posted = await post_photo(client, token, jpeg(64, 48), caption="hello")
    assert not posted.get("errors"), posted
    assert posted["data"]["createPost"]["status"] == "PROCESSING"


async def test_a_followed_celebrity_s_posts_show_in_a_feed_read_just_before(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A celebrity's posts are merged at read time, with no worker to wait for: the
    follower's cached first page from before the follow must go with the follow."""
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 1)
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)
    fan = await sign_up(client, "fan")
    _, author = await follower_of(client, "other", "author")
    await publish(client, resources, author, "celebrated")
    assert (await feed_captions(client, fan))[0] == []  # the first page, cached empty
    await relate_ok(client, "follow", fan, await user_id(client, "author"))
    assert (await feed_captions(client, fan))[0] == ["celebrated"]


async def test_a_block_of_a_follower_shows_in_the_counts_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    _, author = await follower_of(client, "fan", "author")
    stranger = await sign_up(client, "stranger")
    assert await counts(client, stranger) == (1, 0)
    assert await counts(client, author) == (1, 0)
    await relate_ok(client, "block", author, await user_id(client, "fan"))
    assert await counts(client, stranger) == (0, 0)
    assert await counts(client, author) == (0, 0)

"""effects.py where the other tests do not reach it: a change to what is shown of an
account that Redis cannot spread to the caches. Each test kills mutants that survived
mutation/run.py."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.cache.users import ProfileCache
from tests.support.graphql import error_codes, gql, sign_up
from tests.support.photos import jpeg, post_photo

BIO = 'mutation { updateProfile(input: {bio: "new"}) { bio } }'


async def redis_fails(*_: object, **__: object) -> None:
    raise RedisConnectionError("redis went away")


async def test_a_profile_change_the_caches_miss_is_not_reported_done_but_a_post_is(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bio the caches still show the old way is an error to its author (who may try
    again); a new post is shown by its own list anyway, so createPost succeeds."""
    token = await sign_up(client, "author")
    monkeypatch.setattr(ProfileCache, "forget", redis_fails)
    result = await gql(client, BIO, token=token)
    assert error_codes(result) == ["INTERNAL_SERVER_ERROR"]
    assert "temporarily unavailable" in result["errors"][0]["message"]
    posted = await post_photo(client, token, jpeg(64, 48), caption="hello")
    assert not posted.get("errors"), posted
    assert posted["data"]["createPost"]["status"] == "PROCESSING"

"""Rendered responses: a warm read is one Redis round trip and no SQL, and nothing a
change takes away is served from the cache afterwards."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
import pytest

from pictograph.cache import responses
from pictograph.resources import Resources
from tests.support.counting import count_queries
from tests.support.feeds import fan_out, feed_captions, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.redis_counter import count_redis
from tests.support.relations import make_private

PROFILE = """query($name: String!) {
  user(username: $name) { username followerCount isPrivate viewerFollowStatus
    posts(first: 10) { edges { node { id caption media(size: THUMBNAIL) { url } } } } }
}"""


def persisted(query: str, variables: dict[str, Any] | None = None,
              with_document: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}},
        "variables": variables or {},
    }
    if with_document:
        body["query"] = query
    return body


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def post_json(client: httpx.AsyncClient, body: Any, token: str | None = None
                    ) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json=body, headers=headers)


async def test_a_warm_feed_is_one_redis_round_trip_and_no_sql(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a cluster, with the epochs' copies held long enough for a slow machine.
    monkeypatch.setattr(responses, "EPOCH_LEASE", 60.0)
    reader = await sign_up(client, "reader")
    author = await sign_up(client, "author")
    await relate_ok(client, "follow", reader, await user_id(client, "author"))
    await publish(client, resources, author, "hello")
    first, _ = await feed_captions(client, reader)  # renders and stores
    with count_redis(monkeypatch) as redis, count_queries() as sql:
        again, _ = await feed_captions(client, reader)
    assert again == first == ["hello"]
    assert (redis.round_trips, redis.commands, sql) == (1, 1, [])


async def test_persisted_queries_follow_apollos_protocol(
    client: httpx.AsyncClient,
) -> None:
    token = await sign_up(client, "apq")
    query = "query Me { viewer { username } }"
    unknown = (await post_json(client, persisted(query), token)).json()
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await post_json(client, persisted(query, with_document=True), token)
    assert registered.json() == {"data": {"viewer": {"username": "apq"}}}
    for _ in range(2):  # rendered, then from the cache
        by_hash = await post_json(client, persisted(query), token)
        assert by_hash.json() == {"data": {"viewer": {"username": "apq"}}}
    anonymous = await post_json(client, persisted(query))
    assert anonymous.json() == {"data": {"viewer": None}}
    wrong = await post_json(client, {**persisted(query), "query": "{ viewer { id } }"}, token)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad_hash = persisted(query)
    bad_hash["extensions"]["persistedQuery"]["sha256Hash"] = "not a hash"
    assert (await post_json(client, bad_hash, token)).status_code == 400


async def test_a_get_runs_a_persisted_query_but_never_a_mutation(
    client: httpx.AsyncClient,
) -> None:
    token = await sign_up(client, "getter")
    headers = {"authorization": f"Bearer {token}"}
    query = "query { viewer { username } }"
    await post_json(client, persisted(query, with_document=True), token)
    params = {"extensions": orjson.dumps(persisted(query)["extensions"]).decode()}
    answer = await client.get("/graphql", params=params, headers=headers)
    assert answer.json() == {"data": {"viewer": {"username": "getter"}}}

    mutation = "mutation { logOut }"
    await post_json(client, persisted(mutation, with_document=True), await sign_up(client, "other"))
    params = {"extensions": orjson.dumps(persisted(mutation)["extensions"]).decode()}
    refused = await client.get("/graphql", params=params, headers=headers)
    assert refused.status_code in (400, 405)
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    still = await gql(client, "{ viewer { username } }", token=token)
    assert still == {"data": {"viewer": {"username": "getter"}}}  # not logged out
    # A GET with a document of its own is refused as before.
    assert (await client.get("/graphql", params={"query": query})).status_code == 400


async def test_mutations_and_errors_are_never_stored(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await sign_up(client, "careful")
    for _ in range(2):
        missing = await gql(client, 'query { post(id: "UG9zdDox") { id } }', token=token)
        assert missing.get("errors") or missing["data"]["post"] is None
    stored = resources.metrics.response_cache.labels("stored")
    before = stored._value.get()
    await gql(client, 'mutation { updateProfile(input: {bio: "a"}) { bio } }', token=token)
    second = await gql(client, 'mutation { updateProfile(input: {bio: "b"}) { bio } }',
                       token=token)
    assert second["data"]["updateProfile"]["bio"] == "b"
    assert stored._value.get() == before


async def test_logging_out_ends_cached_answers_at_once(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "leaver")
    me = "{ viewer { username } }"
    for _ in range(2):
        assert (await gql(client, me, token=token))["data"]["viewer"] == {"username": "leaver"}
    assert (await gql(client, "mutation { logOut }", token=token))["data"]["logOut"] is True
    assert (await gql(client, me, token=token))["data"]["viewer"] is None


async def test_a_token_naming_another_user_gets_nothing_of_theirs(
    client: httpx.AsyncClient,
) -> None:
    victim = await sign_up(client, "victim")
    attacker = await sign_up(client, "attacker")
    me = "{ viewer { username } }"
    for _ in range(2):
        await gql(client, me, token=victim)
    victim_id = victim.split(".")[0]
    forged = f"{victim_id}.{attacker.split('.', 1)[1]}"
    answer = await gql(client, me, token=forged)
    assert answer["data"]["viewer"] is None


async def test_each_viewer_has_their_own_answers(client: httpx.AsyncClient) -> None:
    one, two = await sign_up(client, "one"), await sign_up(client, "two")
    me = "{ viewer { username } }"
    for _ in range(2):
        assert (await gql(client, me, token=one))["data"]["viewer"]["username"] == "one"
        assert (await gql(client, me, token=two))["data"]["viewer"]["username"] == "two"


@pytest.mark.parametrize("change", ["unfollow", "removeFollower", "block", "private"])
async def test_after_a_revocation_the_next_read_shows_nothing_of_the_author(
    client: httpx.AsyncClient, resources: Resources, change: str
) -> None:
    """A private author's approved follower loses them; for going private, a stranger
    who read the public account loses it."""
    reader = await sign_up(client, "reader")
    author = await sign_up(client, "author")
    reader_id, author_id = await user_id(client, "reader"), await user_id(client, "author")
    if change != "private":
        await make_private(client, author)
        await relate_ok(client, "follow", reader, author_id)
        await relate_ok(client, "approveFollowRequest", author, reader_id)
    await publish(client, resources, author, "secret")
    profile = {"name": "author"}
    for _ in range(2):  # rendered, then served from the cache
        if change != "private":
            assert (await feed_captions(client, reader))[0] == ["secret"]
        assert _captions(await gql(client, PROFILE, profile, token=reader)) == ["secret"]
    if change == "unfollow":
        await relate_ok(client, "unfollow", reader, author_id)
    elif change == "removeFollower":
        await relate_ok(client, "removeFollower", author, reader_id)
    elif change == "block":
        await relate_ok(client, "block", author, reader_id)
    else:
        await make_private(client, author)
    assert (await feed_captions(client, reader))[0] == []
    assert _captions(await gql(client, PROFILE, profile, token=reader)) == []


async def test_a_new_post_shows_on_the_next_read(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    reader = await sign_up(client, "reader")
    author = await sign_up(client, "author")
    await relate_ok(client, "follow", reader, await user_id(client, "author"))
    await publish(client, resources, author, "first")
    for _ in range(2):
        assert (await feed_captions(client, reader))[0] == ["first"]
        assert _captions(await gql(client, PROFILE, {"name": "author"}, token=reader)) == [
            "first"]
    await publish(client, resources, author, "second")
    assert (await feed_captions(client, reader))[0] == ["second", "first"]
    assert _captions(await gql(client, PROFILE, {"name": "author"}, token=reader)) == [
        "second", "first"]


async def test_a_celebrity_post_shows_on_the_next_read(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pictograph.feed import policy

    monkeypatch.setattr(resources.settings, "celebrity_threshold", 1)
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)
    reader = await sign_up(client, "reader")
    star = await sign_up(client, "star")
    await relate_ok(client, "follow", reader, await user_id(client, "star"))
    await publish(client, resources, star, "first")  # the star is a celebrity from here
    for _ in range(2):
        assert (await feed_captions(client, reader))[0] == ["first"]
    await publish(client, resources, star, "second")
    assert (await feed_captions(client, reader))[0] == ["second", "first"]
    await fan_out(resources)


def _captions(result: dict[str, Any]) -> list[str]:
    assert not result.get("errors"), result
    user = result["data"]["user"]
    if user is None:  # a blocked viewer is not shown the profile at all
        return []
    return [edge["node"]["caption"] for edge in user["posts"]["edges"]]



"""Requests the response cache must not take at their word (issue 21, items 4 to 6):
variables the operation does not declare, several operations and no operationName, and
two Authorization headers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from pictograph.cache.responses import MAX_RESPONSES_PER_VIEWER
from pictograph.http.graphql_http import TWO_AUTHORIZATIONS
from pictograph.resources import Resources
from pictograph.schema.operation_choice import UNNAMED_OF_SEVERAL
from tests.http.test_response_cache import persisted, post_json
from tests.support.graphql import gql, sign_up
from tests.support.server import served
from tests.support.sockets import open_socket

ME = "query Me($first: Int = 5) { viewer { username } feed(first: $first) { edges { cursor } } }"
TWO = "query A { viewer { username } } query B { viewer { id } }"


async def stored_responses(resources: Resources) -> int:
    return len([key async for key in resources.redis.scan_iter("answer:*")])


def refusal(response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"errors": [{"message": message,
                                           "extensions": {"code": "BAD_USER_INPUT"}}]}


async def test_variables_the_operation_does_not_declare_make_no_new_responses(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    token = await sign_up(client, "reader")
    for junk in range(50):
        answer = await gql(client, ME, {f"junk{junk}": junk}, token=token)
        assert answer["data"]["viewer"] == {"username": "reader"}, answer
    # A declared variable's default is the value it is keyed on when it is not sent.
    await gql(client, ME, {"first": 5}, token=token)
    assert await stored_responses(resources) == 1
    await gql(client, ME, {"first": 6}, token=token)
    assert await stored_responses(resources) == 2


async def test_one_viewer_holds_a_bounded_number_of_responses(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    token = await sign_up(client, "hoarder")
    stored = resources.metrics.response_cache.labels("stored")
    before = stored._value.get()
    extra = 10
    for n in range(MAX_RESPONSES_PER_VIEWER + extra):  # a document of its own each
        answer = await gql(client, f"{{ n{n}: viewer {{ username }} }}", token=token)
        assert answer == {"data": {f"n{n}": {"username": "hoarder"}}}
    assert stored._value.get() - before == MAX_RESPONSES_PER_VIEWER + extra
    assert await stored_responses(resources) == MAX_RESPONSES_PER_VIEWER
    # Another viewer's are their own.
    other = await sign_up(client, "other")
    await gql(client, "{ viewer { username } }", token=other)
    assert await stored_responses(resources) == MAX_RESPONSES_PER_VIEWER + 1


@pytest.mark.parametrize("signed_in", [True, False])
async def test_several_operations_and_no_name_are_a_request_error_on_every_path(
    client: httpx.AsyncClient, signed_in: bool
) -> None:
    token = await sign_up(client, "chooser") if signed_in else None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    # A plain POST, before and after the document's named operation was cached.
    refusal(await post_json(client, {"query": TWO}, token), UNNAMED_OF_SEVERAL)
    for _ in range(2):
        named = await post_json(client, {"query": TWO, "operationName": "A"}, token)
        assert named.json() == {"data": {"viewer": {"username": "chooser"} if token
                                         else None}}
    refusal(await post_json(client, {"query": TWO}, token), UNNAMED_OF_SEVERAL)
    # Persisted: the document with its hash, then the hash alone (registered by a
    # request that named its operation), and a GET of the hash.
    refusal(await post_json(client, persisted(TWO, with_document=True), token),
            UNNAMED_OF_SEVERAL)
    await post_json(client, {**persisted(TWO, with_document=True), "operationName": "B"},
                    token)
    refusal(await post_json(client, persisted(TWO), token), UNNAMED_OF_SEVERAL)
    params = {"extensions": orjson.dumps(persisted(TWO)["extensions"]).decode()}
    refusal(await client.get("/graphql", params=params, headers=headers),
            UNNAMED_OF_SEVERAL)
    # A body the cache does not read (no Content-Length): the view answers the same.
    chunked = await client.post(
        "/graphql", content=_chunks(orjson.dumps({"query": TWO})),
        headers={**headers, "content-type": "application/json"})
    refusal(chunked, UNNAMED_OF_SEVERAL)


async def test_several_operations_and_no_name_are_an_error_on_a_socket(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await sign_up(client, "socketeer")
    async with served(app) as base, open_socket(base, token) as socket:
        result = await socket.execute(TWO)
        assert result["data"] is None
        assert [error["message"] for error in result["errors"]] == [UNNAMED_OF_SEVERAL]
        assert (await socket.execute("{ viewer { username } }"))["data"] == {
            "viewer": {"username": "socketeer"}}


async def test_two_authorization_headers_are_refused_before_anything_runs(
    client: httpx.AsyncClient,
) -> None:
    victim, attacker = await sign_up(client, "victim"), await sign_up(client, "attacker")
    me = "{ viewer { username } }"
    for _ in range(2):  # the victim's answer, cached
        await gql(client, me, token=victim)
    both = [("authorization", f"Bearer {attacker}"), ("authorization", f"Bearer {victim}")]
    refusal(await client.post("/graphql", json={"query": me}, headers=both),
            TWO_AUTHORIZATIONS)
    await post_json(client, persisted(me, with_document=True), victim)
    params = {"extensions": orjson.dumps(persisted(me)["extensions"]).decode()}
    refusal(await client.get("/graphql", params=params, headers=both), TWO_AUTHORIZATIONS)
    refusal(await client.post("/graphql", json=persisted(me), headers=both),
            TWO_AUTHORIZATIONS)
    bio = 'mutation { updateProfile(input: {bio: "changed"}) { bio } }'
    refusal(await client.post("/graphql", json={"query": bio}, headers=both),
            TWO_AUTHORIZATIONS)
    profile = await gql(client, '{ user(username: "victim") { bio } }', token=victim)
    assert profile["data"]["user"]["bio"] != "changed"


async def _chunks(body: bytes) -> Any:
    yield body

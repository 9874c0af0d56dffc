from __future__ import annotations

import httpx

from tests.support.graphql import error_codes, gql, sign_up

UPDATE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) { username displayName bio isPrivate }
}
"""
USER = "query($u: String!) { user(username: $u) { id username displayName bio isPrivate } }"


async def test_update_profile_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "editor", displayName="Ed")
    # Warm the profile cache so the update has to invalidate it.
    assert (await gql(client, USER, {"u": "editor"}))["data"]["user"]["displayName"] == "Ed"
    result = await gql(client, UPDATE, {"input": {"bio": "I edit things"}}, token=token)
    assert result["data"]["updateProfile"] == {
        "username": "editor",
        "displayName": "Ed",
        "bio": "I edit things",
        "isPrivate": False,
    }
    result = await gql(
        client, UPDATE, {"input": {"displayName": "Edith", "isPrivate": True}}, token=token
    )
    assert result["data"]["updateProfile"]["isPrivate"] is True
    seen = (await gql(client, USER, {"u": "EDITOR"}))["data"]["user"]
    assert seen["displayName"] == "Edith" and seen["bio"] == "I edit things"
    assert seen["isPrivate"] is True


async def test_update_profile_needs_a_token(client: httpx.AsyncClient) -> None:
    result = await gql(client, UPDATE, {"input": {"bio": "x"}})
    assert error_codes(result) == ["UNAUTHENTICATED"]


async def test_bad_profile_input_changes_nothing(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "careful")
    for bad in ({"bio": "b" * 301}, {"displayName": "   "}, {"displayName": "bell\x07"}):
        result = await gql(client, UPDATE, {"input": {**bad, "isPrivate": True}}, token=token)
        assert error_codes(result) == ["BAD_USER_INPUT"], bad
    seen = (await gql(client, USER, {"u": "careful"}))["data"]["user"]
    assert seen["isPrivate"] is False and seen["bio"] == ""


async def test_user_lookup_of_unknown_or_malformed_names_is_null(
    client: httpx.AsyncClient,
) -> None:
    for name in ("nobody", "x", "bad name"):
        assert await gql(client, USER, {"u": name}) == {"data": {"user": None}}


async def test_node_resolves_a_user_by_its_opaque_id(client: httpx.AsyncClient) -> None:
    await sign_up(client, "noded")
    user_id = (await gql(client, USER, {"u": "noded"}))["data"]["user"]["id"]
    query = "query($id: ID!) { node(id: $id) { id ... on User { username } } }"
    assert (await gql(client, query, {"id": user_id}))["data"]["node"] == {
        "id": user_id,
        "username": "noded",
    }
    for junk in ("", "!!!", "VXNlcjo", user_id[:-2]):
        assert (await gql(client, query, {"id": junk}))["data"]["node"] is None

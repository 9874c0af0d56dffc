"""Small helpers for talking GraphQL to the app the way a frontend does."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "correct horse battery"


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def error_codes(result: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in result.get("errors") or []]


SIGN_UP = """
mutation($input: SignUpInput!) {
  signUp(input: $input) { token user { id username displayName } }
}
"""


async def sign_up(client: httpx.AsyncClient, username: str, **extra: Any) -> str:
    result = await gql(
        client, SIGN_UP, {"input": {"username": username, "password": PASSWORD, **extra}}
    )
    assert not result.get("errors"), result
    return result["data"]["signUp"]["token"]


USER_ID = "query($u: String!) { user(username: $u) { id } }"


async def user_id(client: httpx.AsyncClient, username: str, token: str | None = None) -> str:
    result = await gql(client, USER_ID, {"u": username}, token=token)
    return result["data"]["user"]["id"]


FOLLOW_MUTATION = """
mutation($id: ID!) {
  %s(userId: $id) { status user { username followerCount followingCount } }
}
"""


async def relate(
    client: httpx.AsyncClient, mutation: str, token: str, target_id: str
) -> dict[str, Any]:
    """Runs follow/unfollow/block/... and returns the whole result."""
    return await gql(client, FOLLOW_MUTATION % mutation, {"id": target_id}, token=token)


async def relate_ok(
    client: httpx.AsyncClient, mutation: str, token: str, target_id: str
) -> str:
    result = await relate(client, mutation, token, target_id)
    assert not result.get("errors"), result
    return result["data"][mutation]["status"]

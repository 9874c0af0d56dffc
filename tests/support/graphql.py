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

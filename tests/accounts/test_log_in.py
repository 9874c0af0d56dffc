from __future__ import annotations

import httpx
import pytest

from pictograph.passwords import Passwords
from tests.support.graphql import PASSWORD, error_codes, gql, sign_up
from tests.support.redis_state import flush_caches

LOG_IN = """
mutation($username: String!, $password: String!) {
  logIn(input: {username: $username, password: $password}) { token user { username } }
}
"""
VIEWER = "{ viewer { username } }"


async def test_log_in_gives_a_new_token(client: httpx.AsyncClient) -> None:
    first = await sign_up(client, "linus")
    result = await gql(client, LOG_IN, {"username": "Linus", "password": PASSWORD})
    token = result["data"]["logIn"]["token"]
    assert token != first
    assert (await gql(client, VIEWER, token=token))["data"]["viewer"] == {"username": "linus"}


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(client, "known")
    hashes_checked: list[str | None] = []
    original = Passwords._verify

    def counting_verify(self: Passwords, password_hash: str | None, password: str) -> bool:
        hashes_checked.append(password_hash)
        return original(self, password_hash, password)

    monkeypatch.setattr(Passwords, "_verify", counting_verify)
    wrong = await gql(client, LOG_IN, {"username": "known", "password": "not the password"})
    unknown = await gql(client, LOG_IN, {"username": "nobody", "password": "not the password"})
    assert wrong["errors"][0]["message"] == unknown["errors"][0]["message"]
    assert error_codes(wrong) == error_codes(unknown) == ["UNAUTHENTICATED"]
    # Both paths run one full argon2 verification, so they take about the same time.
    assert len(hashes_checked) == 2
    assert hashes_checked[0] is not None and hashes_checked[1] is None


async def test_log_out_revokes_only_the_token_that_made_the_request(
    client: httpx.AsyncClient,
) -> None:
    first = await sign_up(client, "twodevices")
    second = (await gql(client, LOG_IN, {"username": "twodevices", "password": PASSWORD}))[
        "data"
    ]["logIn"]["token"]
    # Warm the token cache first: revocation must beat a cached lookup.
    assert (await gql(client, VIEWER, token=first))["data"]["viewer"]
    assert (await gql(client, "mutation { logOut }", token=first))["data"] == {"logOut": True}
    assert (await gql(client, VIEWER, token=first))["data"]["viewer"] is None
    refused = await gql(client, "mutation { logOut }", token=first)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    assert (await gql(client, VIEWER, token=second))["data"]["viewer"] == {"username": "twodevices"}


async def test_revocation_holds_when_redis_is_flushed(client: httpx.AsyncClient, resources) -> None:
    token = await sign_up(client, "flushed")
    await gql(client, "mutation { logOut }", token=token)
    await flush_caches(resources.redis)
    assert (await gql(client, VIEWER, token=token))["data"]["viewer"] is None


async def test_log_out_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    result = await gql(client, "mutation { logOut }")
    assert error_codes(result) == ["UNAUTHENTICATED"]


async def test_garbage_token_is_anonymous_for_viewer(client: httpx.AsyncClient) -> None:
    result = await gql(client, VIEWER, token="not-a-real-token")
    assert result == {"data": {"viewer": None}}


async def test_expired_token_is_refused(client: httpx.AsyncClient, resources) -> None:
    from datetime import UTC, datetime, timedelta

    from pictograph.models import AuthToken

    token = await sign_up(client, "expiring")
    # Time passes: the row expires, and the cache entry (never longer-lived than the
    # token) with it.
    await AuthToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await flush_caches(resources.redis)
    result = await gql(client, "mutation { logOut }", token=token)
    assert error_codes(result) == ["UNAUTHENTICATED"]

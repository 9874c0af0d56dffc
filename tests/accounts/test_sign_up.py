from __future__ import annotations

import asyncio

import httpx
import pytest

from pictograph.models import AuthToken, User
from pictograph.resources import Resources
from tests.support.graphql import PASSWORD, SIGN_UP, error_codes, gql, sign_up

VIEWER = """{ viewer {
  id username displayName bio isPrivate followerCount followingCount postCount
} }"""


async def test_sign_up_returns_a_working_token(client: httpx.AsyncClient) -> None:
    result = await gql(
        client,
        SIGN_UP,
        {"input": {"username": "Ada.Lovelace", "password": PASSWORD, "displayName": "Ada"}},
    )
    payload = result["data"]["signUp"]
    assert payload["user"]["username"] == "ada.lovelace"
    assert payload["user"]["displayName"] == "Ada"
    viewer = (await gql(client, VIEWER, token=payload["token"]))["data"]["viewer"]
    assert viewer == {
        "id": payload["user"]["id"],
        "username": "ada.lovelace",
        "displayName": "Ada",
        "bio": "",
        "isPrivate": False,
        "followerCount": 0,
        "followingCount": 0,
        "postCount": 0,
    }


async def test_display_name_defaults_to_the_username(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "grace")
    viewer = (await gql(client, VIEWER, token=token))["data"]["viewer"]
    assert viewer["displayName"] == "grace"


async def test_password_is_stored_only_as_an_argon2id_hash(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "hashed")
    user = await User.get(username="hashed")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    stored = await AuthToken.filter(user=user).values_list("token_hash", flat=True)
    assert token not in stored and len(stored) == 1


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 31, "has space", "émile", "semi;colon", "dash-name", ""],
)
async def test_bad_usernames_are_bad_user_input(client: httpx.AsyncClient, username: str) -> None:
    result = await gql(client, SIGN_UP, {"input": {"username": username, "password": PASSWORD}})
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert await User.all().count() == 0


async def test_short_password_is_bad_user_input(client: httpx.AsyncClient) -> None:
    result = await gql(client, SIGN_UP, {"input": {"username": "shorty", "password": "123456789"}})
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert "10" in result["errors"][0]["message"]
    assert await User.all().count() == 0


async def test_taken_username_is_conflict_whatever_its_case(client: httpx.AsyncClient) -> None:
    await sign_up(client, "taken")
    result = await gql(client, SIGN_UP, {"input": {"username": "TAKEN", "password": PASSWORD}})
    assert error_codes(result) == ["CONFLICT"]
    assert await User.filter(username="taken").count() == 1


async def test_concurrent_sign_ups_for_one_name_make_one_user(client: httpx.AsyncClient) -> None:
    variables = {"input": {"username": "racer", "password": PASSWORD}}
    results = await asyncio.gather(*(gql(client, SIGN_UP, variables) for _ in range(5)))
    winners = [r for r in results if not r.get("errors")]
    assert len(winners) == 1
    assert all(error_codes(r) == ["CONFLICT"] for r in results if r.get("errors"))
    assert await User.filter(username="racer").count() == 1
    assert await AuthToken.all().count() == 1


async def test_overlong_display_name_is_refused(client: httpx.AsyncClient) -> None:
    result = await gql(
        client,
        SIGN_UP,
        {"input": {"username": "longname", "password": PASSWORD, "displayName": "x" * 65}},
    )
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert await User.all().count() == 0


async def test_password_never_reaches_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, resources: Resources
) -> None:
    caplog.set_level("DEBUG")
    await sign_up(client, "quiet")
    await gql(
        client,
        'mutation { logIn(input: {username: "quiet", password: "wrong password!"}) { token } }',
    )
    assert PASSWORD not in caplog.text
    assert "wrong password!" not in caplog.text

"""signUp refuses guessable passwords (zxcvbn's estimate) and passwords holding the
username or display name, saying why; logIn takes any existing password as it is."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import pytest
import zxcvbn.matching

from pictograph.accounts import password_policy
from pictograph.models import User
from pictograph.resources import Resources
from tests.support.graphql import SIGN_UP, error_codes, gql, sign_up
from tests.support.rate_limits import log_in


async def refusal(client: httpx.AsyncClient, **signing_up: Any) -> dict[str, Any]:
    """The BAD_USER_INPUT error for a sign-up that must be refused (no user is made)."""
    result = await gql(client, SIGN_UP, {"input": {"username": "ada", **signing_up}})
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    assert await User.all().count() == 0
    error = result["errors"][0]
    assert error["extensions"]["field"] == "password", error
    return error


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaaaa", 'repeats like "aaa" are easy to guess'),
        (" " * 10, 'repeats like "aaa" are easy to guess'),
        ("password12345", "similar to a commonly used password"),
        ("qwertyuiop[]", "straight rows of keys are easy to guess"),
        ("1234567890", "top-100 common password"),
        ("p@ssw0rd2024", "similar to a commonly used password"),
    ],
)
async def test_a_guessable_password_is_refused_saying_why(
    client: httpx.AsyncClient, password: str, why: str
) -> None:
    error = await refusal(client, password=password)
    assert error["message"].startswith("that password is too easy to guess"), error
    assert why in error["message"], error


@pytest.mark.parametrize("password", ["adalovelace", "ADA-orbit-vermilion", "kqzvwadamp"])
async def test_a_password_holding_the_username_is_refused(
    client: httpx.AsyncClient, password: str
) -> None:
    error = await refusal(client, password=password)
    assert error["message"] == "a password cannot contain the username", error


async def test_the_username_plus_a_few_letters_is_refused(client: httpx.AsyncClient) -> None:
    result = await gql(client, SIGN_UP, {"input": {"username": "marguerite",
                                                   "password": "margueritekqzvw"}})
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert result["errors"][0]["message"] == "a password cannot contain the username"


async def test_a_password_holding_the_display_name_is_refused(
    client: httpx.AsyncClient,
) -> None:
    error = await refusal(client, password="velvet Wilhelmina orbit",
                          displayName="Wilhelmina")
    assert error["message"] == "a password cannot contain the display name", error
    # A short display name is a syllable of many words: it does not count.
    assert await sign_up(client, "grace", displayName="bat")  # "correct horse battery"


async def test_a_strong_password_is_accepted(client: httpx.AsyncClient) -> None:
    # The suite's and the demo accounts' password ("correct horse battery") stays acceptable.
    assert await sign_up(client, "ada")
    result = await gql(client, SIGN_UP, {"input": {"username": "grace",
                                                   "password": "Vq7#tLw2!pZ9"}})
    assert not result.get("errors"), result


async def test_log_in_takes_an_existing_password_however_weak(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Accounts made before the rule keep working: only a new password is judged."""
    password_hash = await resources.passwords.hash("aaaaaaaaaa")
    await User.create(username="veteran", display_name="veteran", password_hash=password_hash)
    assert (await log_in(client, "veteran", "aaaaaaaaaa"))["data"]["logIn"]["token"]


async def test_judging_a_long_password_does_bounded_work(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zxcvbn tries every combination of l33t substitutions, each over every substring:
    a password full of distinct substitution characters (digits, @, $, !, |, ...) costs it
    seconds at 40 characters and minutes at 100. The work is counted, not timed: the
    substrings its dictionary lookups run over."""
    substrings = 0
    lookup = zxcvbn.matching.dictionary_match

    def counting(password: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal substrings
        substrings += len(password) * (len(password) + 1) // 2
        return lookup(password, *args, **kwargs)

    monkeypatch.setattr(zxcvbn.matching, "dictionary_match", counting)
    # Strong: random, from an alphabet rich in substitution characters.
    rng = random.Random(1)  # noqa: S311 - a fixed password, not a secret
    alphabet = "!$%(+0123456789<@[{|" + "abcdefghijkmnpqrstuvwxyz"
    long_password = "".join(rng.choice(alphabet) for _ in range(1024))
    result = await gql(client, SIGN_UP, {"input": {"username": "ada",
                                                   "password": long_password}})
    assert not result.get("errors"), result
    # As much as judging four ordinary 64-character passwords (one dictionary pass
    # forwards, one backwards, two l33t variants), where the whole password would
    # have taken millions.
    assert 0 < substrings <= 4 * (64 * 65 // 2), substrings


async def test_passwords_are_judged_off_the_event_loop(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typical estimate costs milliseconds of pure Python: not on the event loop."""
    threads: list[int] = []
    estimate = zxcvbn.zxcvbn

    def recording(password: str, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return estimate(password, *args, **kwargs)

    monkeypatch.setattr(password_policy, "zxcvbn", recording)
    assert await sign_up(client, "ada")
    assert len(threads) == 1 and threads[0] != threading.get_ident()

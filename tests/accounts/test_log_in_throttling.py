"""logIn's limits: tight per (username, address), loose per username from addresses that
have not logged in to the account lately, loose per address; each attempt counted before
the password is looked at, so aliases and parallel requests draw on one count."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

from pictograph.cache import keys
from pictograph.cache.rate_limits import client_subject, username_subject
from pictograph.resources import Resources
from tests.support.graphql import PASSWORD, error_codes, gql, sign_up
from tests.support.rate_limits import Tighten, client_at, log_in, retry_after

WRONG = "wrong password!"
HOME = "198.51.100.10"  # where the owner signed up and logs in from
ELSEWHERE = "192.0.2.77"  # the owner on a trip: an address that never logged in as them


def attacker(i: int) -> str:
    return f"203.0.113.{i}"


async def sign_up_at_home(app: Starlette, *usernames: str) -> None:
    async with client_at(app, HOME) as home:
        for username in usernames:
            await sign_up(home, username)


async def token_from(app: Starlette, host: str, username: str, password: str) -> str | None:
    async with client_at(app, host) as client:
        result = await log_in(client, username, password)
    return (result.get("data") or {}).get("logIn", {}).get("token")


async def codes_from(app: Starlette, host: str, username: str, password: str) -> list[str]:
    async with client_at(app, host) as client:
        return error_codes(await log_in(client, username, password))


async def test_wrong_passwords_from_elsewhere_cannot_lock_the_owner_out_of_home(
    app: Starlette, tighten: Tighten
) -> None:
    await sign_up_at_home(app, "ada")
    tighten(log_in_per_username="4/minute", log_in_per_username_and_ip="3/minute")
    # A distributed guesser: a new address for each guess. The loose per-username limit,
    # shared by every address that has not logged in as ada lately, stops it at four.
    codes = [code for i in range(10) for code in await codes_from(app, attacker(i), "ada", WRONG)]
    assert codes == ["UNAUTHENTICATED"] * 4 + ["RATE_LIMITED"] * 6
    # The owner's right password from home is not held back by any of it...
    assert await token_from(app, HOME, "ada", PASSWORD)
    # ...while from a new address the loose limit applies to the owner too.
    async with client_at(app, ELSEWHERE) as elsewhere:
        retry_after(await log_in(elsewhere, "ada", PASSWORD), 60)


async def test_one_address_guessing_is_stopped_by_the_tight_limit(
    app: Starlette, tighten: Tighten
) -> None:
    await sign_up_at_home(app, "ada", "grace")
    tighten(log_in_per_username_and_ip="3/minute")
    async with client_at(app, attacker(1)) as guesser:
        for _ in range(3):
            assert error_codes(await log_in(guesser, "ada", WRONG)) == ["UNAUTHENTICATED"]
        # Even the right password is refused now, without being checked.
        retry_after(await log_in(guesser, "ada", PASSWORD), 60)
        # Another account from the same address has its own count.
        assert error_codes(await log_in(guesser, "grace", WRONG)) == ["UNAUTHENTICATED"]
    # The owner, at home, is not affected.
    assert await token_from(app, HOME, "ada", PASSWORD)


async def test_the_tight_limit_holds_at_a_known_address_and_a_success_resets_it(
    app: Starlette, tighten: Tighten
) -> None:
    async with client_at(app, HOME) as home:
        await sign_up(home, "ada")
        tighten(log_in_per_username_and_ip="3/minute", log_in_per_username="1/minute")
        # Typos at home: the per-username limit does not apply here, the tight one does.
        for _ in range(2):
            assert error_codes(await log_in(home, "ada", WRONG)) == ["UNAUTHENTICATED"]
        # The right password proves the address: its count starts again.
        assert (await log_in(home, "ada", PASSWORD))["data"]["logIn"]["token"]
        for _ in range(3):
            assert error_codes(await log_in(home, "ada", WRONG)) == ["UNAUTHENTICATED"]
        retry_after(await log_in(home, "ada", PASSWORD), 60)


async def test_unknown_usernames_are_limited_all_the_same(
    app: Starlette, tighten: Tighten
) -> None:
    tighten(log_in_per_username="3/minute")
    codes = [code for i in range(5) for code in await codes_from(app, attacker(i), "ghost", WRONG)]
    assert codes == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"] * 2


async def test_log_in_is_limited_per_address_whatever_the_username(
    app: Starlette, tighten: Tighten
) -> None:
    await sign_up_at_home(app, "ada")
    tighten(log_in_per_ip="3/minute")
    async with client_at(app, attacker(1)) as sprayer:
        for i in range(3):  # a different username each time: the address still counts
            assert error_codes(await log_in(sprayer, f"guess{i}", WRONG)) == [
                "UNAUTHENTICATED"
            ]
        retry_after(await log_in(sprayer, "ada", PASSWORD), 60)
    assert await token_from(app, HOME, "ada", PASSWORD)


async def test_aliases_in_one_document_cannot_get_past_the_log_in_limit(
    client: httpx.AsyncClient, tighten: Tighten
) -> None:
    await sign_up(client, "ada")
    tighten(log_in_per_ip="3/minute")
    guesses = " ".join(
        f'g{i}: logIn(input: {{username: "ada", password: "{PASSWORD}"}}) {{ token }}'
        for i in range(10)
    )
    result = await gql(client, f"mutation {{ {guesses} }}")
    # Each alias is an attempt: three pass, the fourth is refused (and, logIn being
    # non-null, the refusal takes the whole answer with it).
    assert error_codes(result) == ["RATE_LIMITED"], result
    assert result["data"] is None
    assert result["errors"][0]["path"] == ["g3"]
    retry_after(result, 60)
    retry_after(await log_in(client, "ada", PASSWORD), 60)


async def test_parallel_guesses_share_one_count(app: Starlette, tighten: Tighten) -> None:
    await sign_up_at_home(app, "ada")
    tighten(log_in_per_username_and_ip="4/minute", log_in_per_username="4/minute")
    for host in (HOME, attacker(1)):  # the tight limit at home, both limits elsewhere
        async with client_at(app, host) as client:
            results = await asyncio.gather(
                *(log_in(client, "ada", f"wrong password {i}") for i in range(12))
            )
        codes = sorted(code for result in results for code in error_codes(result))
        assert codes == ["RATE_LIMITED"] * 8 + ["UNAUTHENTICATED"] * 4


async def test_an_address_stays_known_for_the_configured_time(
    app: Starlette, resources: Resources
) -> None:
    await sign_up_at_home(app, "ada")
    known = keys.known_log_in_address(username_subject("ada"), client_subject(HOME))
    ttl = resources.settings.log_in_known_address_ttl
    assert 0 < await resources.redis.ttl(known) <= ttl
    # A failure does not make an address known; only the right password does.
    assert await codes_from(app, ELSEWHERE, "ada", WRONG) == ["UNAUTHENTICATED"]
    elsewhere = keys.known_log_in_address(username_subject("ada"), client_subject(ELSEWHERE))
    assert not await resources.redis.exists(elsewhere)
    assert await token_from(app, ELSEWHERE, "ada", PASSWORD)
    assert 0 < await resources.redis.ttl(elsewhere) <= ttl

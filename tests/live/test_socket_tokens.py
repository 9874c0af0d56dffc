"""A socket lives no longer than its token: logOut (on any process), expiry, or a
revocation the socket might have missed while Redis was away all close it with 4403, and
nothing runs on it as the user once logOut has returned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from tortoise.transactions import in_transaction

from pictograph.accounts import sessions
from pictograph.accounts.sessions import (
    NOT_CACHED,
    Session,
    cached_sessions,
    mint_token,
    remember_new_token,
    token_key,
)
from pictograph.cache import tokens as token_cache
from pictograph.checkpoints import holding
from pictograph.http import sockets
from pictograph.http.sockets import TOKEN_ENDED
from pictograph.models import AuthToken
from pictograph.resources import Resources
from tests.conftest import require_services
from tests.support.feeds import publish
from tests.support.graphql import gql, sign_up
from tests.support.redis_counter import count_redis
from tests.support.relations import follower_of
from tests.support.server import served
from tests.support.sockets import Socket, SocketClosed, kill_pubsub_connections, open_socket

LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token } }"""
VIEWER = "{ viewer { username } }"
FEED_UPDATES = "subscription { feedUpdates { kind postId post { caption } } }"
# Far above the pub/sub hop that closes a socket; only turns "never" into a failure.
CLOSE_WITHIN = 5


async def closed_with(socket: Socket) -> int | None:
    return (await asyncio.wait_for(socket.closed, CLOSE_WITHIN)).code


async def first_or_none(updates: AsyncIterator[dict]) -> dict | None:
    """The next result, or None if the operation or the socket ended instead."""
    try:
        return await asyncio.wait_for(anext(updates), CLOSE_WITHIN)
    except (SocketClosed, StopAsyncIteration):
        return None


async def two_tokens(client: httpx.AsyncClient, username: str) -> tuple[str, str]:
    """A new user's token from signing up, and a second from logging in."""
    first = await sign_up(client, username)
    result = await gql(client, LOG_IN, {"u": username, "p": "correct horse battery"})
    return first, result["data"]["logIn"]["token"]


async def log_out(client: httpx.AsyncClient, token: str) -> None:
    result = await gql(client, "mutation { logOut }", token=token)
    assert result == {"data": {"logOut": True}}, result


async def test_log_out_closes_every_socket_opened_with_that_token_and_no_other(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    first, second = await two_tokens(client, "leaver")
    async with served(app) as base, open_socket(base, first) as one, \
            open_socket(base, first) as two, open_socket(base, second) as other:
        assert (await one.execute(VIEWER))["data"] == {"viewer": {"username": "leaver"}}
        await log_out(client, first)
        assert await closed_with(one) == TOKEN_ENDED
        assert await closed_with(two) == TOKEN_ENDED
        assert (await other.execute(VIEWER))["data"] == {"viewer": {"username": "leaver"}}


async def test_nothing_runs_on_a_socket_once_log_out_has_returned(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    async with served(app) as base, open_socket(base, fan) as socket:
        assert (await socket.execute(VIEWER))["data"]["viewer"] == {"username": "fan"}
        await log_out(client, fan)
        # Sent the moment logOut returned, before the socket has heard of it.
        try:
            answer = await socket.execute(VIEWER)
        except SocketClosed:
            answer = None
        assert answer is None or answer["data"] in (None, {"viewer": None}), answer
        try:
            async with socket.subscription(FEED_UPDATES) as updates:
                await publish(client, resources, author, "after the log-out")
                first = await first_or_none(updates)
        except SocketClosed:
            first = None
        assert first is None or first["data"] is None, first
        assert await closed_with(socket) == TOKEN_ENDED


async def test_a_subscription_that_starts_while_log_out_runs_does_not_survive_it(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    fan, author = await follower_of(client, "fan", "author")
    async with served(app) as base, open_socket(base, fan) as socket:
        # The subscription has checked the token and is held there; logOut runs to the end.
        async with holding("feed_updates.signed_in") as hold:
            async with socket.subscription(FEED_UPDATES) as updates:
                async with asyncio.timeout(10):
                    await hold.wait_reached()
                await log_out(client, fan)
                hold.release()
                await publish(client, resources, author, "after the log-out")
                first = await first_or_none(updates)
        assert first is None or first["data"] is None, first
        assert await closed_with(socket) == TOKEN_ENDED


async def test_a_socket_closes_when_its_token_expires(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    await sign_up(client, "brief")
    owner = await AuthToken.first()
    assert owner is not None
    async with in_transaction():
        token = await mint_token(owner.user_id, lifetime_seconds=2)  # type: ignore[attr-defined]
    await remember_new_token(resources.redis, token, owner.user_id, 2)  # type: ignore[attr-defined]
    async with served(app) as base, open_socket(base, token) as socket:
        assert (await socket.execute(VIEWER))["data"]["viewer"] == {"username": "brief"}
        assert await closed_with(socket) == TOKEN_ENDED


async def test_a_revocation_missed_while_redis_was_away_still_closes_the_socket(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    if resources.settings.embedded_redis:
        pytest.skip("needs a real Redis whose connections can be killed")
    await require_services()
    token = await sign_up(client, "unlucky")
    async with served(app) as base, open_socket(base, token) as socket:
        assert (await socket.execute(VIEWER))["data"]["viewer"] == {"username": "unlucky"}
        # Revoked without the message a logOut sends, as if it was published while the
        # hub was disconnected; then the hub's connection drops.
        await token_cache.mark_revoked(resources.redis, token_key(token), 3600)
        assert await kill_pubsub_connections(resources.redis) >= 1
        assert await closed_with(socket) == TOKEN_ENDED


async def test_a_token_that_ends_without_a_word_closes_its_sockets_at_the_next_recheck(
    client: httpx.AsyncClient, app: Starlette, resources: Resources,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "RECHECK_INTERVAL", 0.4)
    monkeypatch.setattr(sockets, "RECHECK_SWEEP_SECONDS", 0.1)
    first, second = await two_tokens(client, "quiet")
    async with served(app) as base, open_socket(base, first) as one, \
            open_socket(base, first) as two, open_socket(base, second) as other:
        assert (await one.execute(VIEWER))["data"] == {"viewer": {"username": "quiet"}}
        # Revoked with no message (as a revocation published while this process's hub
        # was away, and its RESYNC lost too): only the periodic recheck can find it.
        await token_cache.mark_revoked(resources.redis, token_key(first), 3600)
        # A sweep left waiting by an earlier test's loop may take its full wait first.
        assert (await asyncio.wait_for(one.closed, 15)).code == TOKEN_ENDED
        assert (await asyncio.wait_for(two.closed, 15)).code == TOKEN_ENDED
        await asyncio.sleep(1.0)  # more than two rechecks of the other token
        assert (await other.execute(VIEWER))["data"] == {"viewer": {"username": "quiet"}}


async def test_the_recheck_reads_many_tokens_in_one_round_trip_and_judges_each(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [await sign_up(client, f"many{n}") for n in range(4)]
    await token_cache.mark_revoked(resources.redis, token_key(tokens[1]), 3600)
    await resources.redis.delete(token_key(tokens[3]))  # only the database knows it
    with count_redis(monkeypatch) as count:
        verdicts = await cached_sessions(resources.redis, tokens)
    assert count.round_trips == 1 and count.commands == 4
    assert isinstance(verdicts[0], Session) and isinstance(verdicts[2], Session)
    assert verdicts[0].user_id != verdicts[2].user_id
    assert verdicts[1] is None and verdicts[3] == NOT_CACHED


async def test_a_token_the_recheck_cannot_read_holds_up_no_other_socket(
    client: httpx.AsyncClient, app: Starlette, resources: Resources,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """One token only the database knows, and the database failing for it: the other
    socket's token, revoked without a word, still closes it at the same recheck, and the
    failing one is asked again soon rather than an interval later."""
    monkeypatch.setattr(sockets, "RECHECK_INTERVAL", 0.4)
    monkeypatch.setattr(sockets, "RECHECK_SWEEP_SECONDS", 0.1)
    monkeypatch.setattr(sockets, "RECHECK_RETRY_SECONDS", 0.2)
    revoked = await sign_up(client, "revoked")
    unreadable = await sign_up(client, "unreadable")
    asked: list[str] = []
    session_of = sessions._session

    async def failing_for_one(redis: object, token: str, cached: object) -> object:
        if token == unreadable and cached is None:  # its row is asked for
            asked.append(token)
            raise ConnectionError("the database is away")
        return await session_of(redis, token, cached)  # type: ignore[arg-type]

    async with served(app) as base, open_socket(base, revoked) as one, \
            open_socket(base, unreadable) as other:
        assert (await other.execute(VIEWER))["data"] == {"viewer": {"username": "unreadable"}}
        monkeypatch.setattr(sessions, "_session", failing_for_one)
        await resources.redis.delete(token_key(unreadable))
        await token_cache.mark_revoked(resources.redis, token_key(revoked), 3600)
        assert (await asyncio.wait_for(one.closed, 15)).code == TOKEN_ENDED
        await asyncio.sleep(1.0)
        assert len(asked) >= 2  # asked again within the retry, not an interval later
        assert not other.closed.done()  # a failed check is no verdict

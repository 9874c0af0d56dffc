"""A rendered response's life: never past its TTL, never past the epochs it recorded,
and judged by the server's clock alone (issue 21, items 3 and 8)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest

from pictograph.accounts import sessions
from pictograph.cache import jitter, keys, responses
from pictograph.cache.responses import response_lifetime
from pictograph.cache.versioned import VERSION_TTL
from pictograph.resources import Resources
from tests.support.graphql import gql, sign_up

PROFILE = '{ user(username: "author") { username bio } }'
ME = "{ viewer { username } }"
MAX_SETTING = 3600  # settings.response_cache_ttl's bound (and media_url_ttl // 10's)


def pin_jitter(monkeypatch: pytest.MonkeyPatch, longest: bool) -> None:
    """The jitter at one end of its range: the longest (or shortest) TTL it can give."""
    pick = (lambda low, high: high) if longest else (lambda low, high: low)
    monkeypatch.setattr(jitter, "random", SimpleNamespace(randint=pick))


@pytest.mark.parametrize("longest", [True, False])
def test_no_response_outlives_its_ttl_at_any_allowed_ttl(
    monkeypatch: pytest.MonkeyPatch, longest: bool
) -> None:
    pin_jitter(monkeypatch, longest)
    for ttl in range(1, MAX_SETTING + 1):
        assert 1 <= response_lifetime(ttl) <= ttl, ttl


async def test_a_stored_response_lives_at_most_the_ttl_and_its_epochs_longer(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_jitter(monkeypatch, longest=True)
    await sign_up(client, "author")
    reader = await sign_up(client, "reader")
    for _ in range(2):
        assert (await gql(client, PROFILE, token=reader))["data"]["user"]["username"] == "author"
    redis = resources.redis
    stored = [key async for key in redis.scan_iter("answer:*")]
    assert len(stored) == 1
    response_ttl = await redis.ttl(stored[0])
    assert 0 < response_ttl <= resources.settings.response_ttl
    epochs = [key async for key in redis.scan_iter(keys.user_shown("*"))]
    assert epochs  # the author's
    for key in epochs:
        # A lost epoch only refuses (test_response_cache_mutation_kills.py); this one
        # is kept long enough that it is seldom lost under a live answer.
        assert await redis.ttl(key) > VERSION_TTL - 60 > response_ttl


async def test_a_token_the_server_finds_expired_is_never_served_from_the_cache(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis's clock (here, the real one) is behind the server's: the server's decides."""
    token = await sign_up(client, "leaver")
    for _ in range(2):  # rendered, then from the cache
        assert (await gql(client, ME, token=token))["data"]["viewer"] == {"username": "leaver"}
    later = time.time() + resources.settings.token_ttl + 60
    shifted = SimpleNamespace(time=lambda: later, monotonic=time.monotonic)
    monkeypatch.setattr(responses, "time", shifted)
    monkeypatch.setattr(sessions, "time", shifted)
    assert (await gql(client, ME, token=token))["data"]["viewer"] is None

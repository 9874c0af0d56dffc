"""A rendered response's life: never past its TTL, never past the registrations that
let a change find it, and judged by the server's clock alone (issue 21, items 3 and 8)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from pictograph.accounts import sessions
from pictograph.cache import jitter, responses
from pictograph.cache.responses import READERS_MARGIN, readers_ttl, response_lifetime
from pictograph.checkpoints import holding
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
def test_no_response_outlives_its_registrations_at_any_allowed_ttl(
    monkeypatch: pytest.MonkeyPatch, longest: bool
) -> None:
    pin_jitter(monkeypatch, longest)
    for ttl in range(1, MAX_SETTING + 1):
        for elapsed in (0.0, READERS_MARGIN / 2, float(READERS_MARGIN)):
            lifetime = response_lifetime(ttl, elapsed)
            assert lifetime is not None and 1 <= lifetime <= ttl, (ttl, elapsed)
            # Registered after the recording began, so at least this long from then:
            assert elapsed + lifetime <= readers_ttl(ttl), (ttl, elapsed)
        assert response_lifetime(ttl, READERS_MARGIN + 0.001) is None


async def test_a_stored_response_lives_at_most_the_ttl_and_its_registrations_longer(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_jitter(monkeypatch, longest=True)
    await sign_up(client, "author")
    reader = await sign_up(client, "reader")
    for _ in range(2):
        assert (await gql(client, PROFILE, token=reader))["data"]["user"]["username"] == "author"
    redis = resources.redis
    stored = [key async for key in redis.scan_iter("rendered:*")]
    assert len(stored) == 1
    readers = [key async for key in redis.scan_iter("user:*:readers")]
    assert readers  # the author's, and the viewer's own
    response_ttl = await redis.ttl(stored[0])
    assert 0 < response_ttl <= resources.settings.response_ttl
    for key in readers:
        assert await redis.ttl(key) >= response_ttl + READERS_MARGIN - 5


async def test_a_render_slower_than_the_margin_is_not_stored(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(client, "author")
    reader = await sign_up(client, "reader")
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(responses, "time", SimpleNamespace(
        monotonic=lambda: clock.now, time=time.time))
    stored = resources.metrics.response_cache.labels("stored")
    before = stored._value.get()
    async with holding("responses.rendered") as hold:
        read = asyncio.create_task(gql(client, PROFILE, token=reader))
        async with asyncio.timeout(10):
            await hold.wait_reached()
        clock.now += READERS_MARGIN + 1  # the render took longer than the margin
        hold.release()
        assert (await read)["data"]["user"]["username"] == "author"
    assert stored._value.get() == before
    assert [key async for key in resources.redis.scan_iter("rendered:*")] == []


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

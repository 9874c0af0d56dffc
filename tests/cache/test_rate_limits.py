"""Rate limits: each one trips with RATE_LIMITED and a retryAfter, per whom it counts,
across app instances, and what happens when Redis cannot count. logIn's own limits are
in tests/accounts/test_log_in_throttling.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.app import create_app
from pictograph.cache import keys
from pictograph.cache.connection import open_redis
from pictograph.cache.rate_limits import RateLimits, client_subject
from pictograph.resources import Resources
from pictograph.settings import Settings, SettingsError, load_settings
from tests.conftest import Backend
from tests.support.graphql import PASSWORD, SIGN_UP, error_codes, gql, sign_up
from tests.support.photos import jpeg, post_photo, process_media
from tests.support.rate_limits import Tighten, client_at, log_in, retry_after
from tests.support.redis_state import all_keys

UPDATE_BIO = "mutation($bio: String) { updateProfile(input: {bio: $bio}) { bio } }"
CREATE_UPLOAD = """mutation {
  createUpload(input: {contentType: "image/jpeg", byteSize: 1000}) { uploadId }
}"""
THUMBNAIL = "query($id: ID!) { post(id: $id) { media(size: THUMBNAIL) { url } } }"


@pytest.fixture
async def other_address(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(app, "203.0.113.9") as client:
        yield client


async def test_sign_up_is_limited_per_address(
    client: httpx.AsyncClient, other_address: httpx.AsyncClient, tighten: Tighten
) -> None:
    tighten(sign_up_per_ip="2/hour")
    await sign_up(client, "ada")
    # A taken name counts too, so sign-up cannot be used to test names without limit.
    taken = await gql(client, SIGN_UP, {"input": {"username": "ada", "password": PASSWORD}})
    assert error_codes(taken) == ["CONFLICT"]
    refused = await gql(client, SIGN_UP, {"input": {"username": "bob", "password": PASSWORD}})
    retry_after(refused, 3600)
    assert await sign_up(other_address, "bob")


async def test_mutations_are_limited_per_user(
    client: httpx.AsyncClient, tighten: Tighten
) -> None:
    ada = await sign_up(client, "ada")
    bob = await sign_up(client, "bob")
    tighten(mutations_per_user="3/minute")
    for i in range(3):
        assert not (await gql(client, UPDATE_BIO, {"bio": f"v{i}"}, token=ada)).get("errors")
    retry_after(await gql(client, UPDATE_BIO, {"bio": "v3"}, token=ada), 60)
    # Every kind of mutation draws on the same count.
    retry_after(await gql(client, CREATE_UPLOAD, token=ada), 60)
    assert not (await gql(client, UPDATE_BIO, {"bio": "mine"}, token=bob)).get("errors")
    # Reads are not mutations.
    assert not (await gql(client, "{ viewer { bio } }", token=ada)).get("errors")


async def test_uploads_are_limited_per_user(client: httpx.AsyncClient, tighten: Tighten) -> None:
    ada = await sign_up(client, "ada")
    bob = await sign_up(client, "bob")
    tighten(uploads_per_user="2/hour")
    for _ in range(2):
        assert not (await gql(client, CREATE_UPLOAD, token=ada)).get("errors")
    retry_after(await gql(client, CREATE_UPLOAD, token=ada), 3600)
    assert not (await gql(client, CREATE_UPLOAD, token=bob)).get("errors")
    # Other changes are still allowed.
    assert not (await gql(client, UPDATE_BIO, {"bio": "hi"}, token=ada)).get("errors")


async def _thumbnail_url(client: httpx.AsyncClient, resources: Resources, token: str) -> str:
    """A path and query the app serves the viewer's own new photo at."""
    posted = await post_photo(client, token, jpeg(64, 48))
    assert not posted.get("errors"), posted
    await process_media(resources)
    result = await gql(client, THUMBNAIL, {"id": posted["data"]["createPost"]["id"]},
                       token=token)
    url = urlsplit(result["data"]["post"]["media"]["url"])
    return f"{url.path}?{url.query}"


async def test_media_requests_are_limited_per_viewer_with_429(
    client: httpx.AsyncClient, resources: Resources, tighten: Tighten
) -> None:
    ada = await sign_up(client, "ada")
    bob = await sign_up(client, "bob")
    ada_url = await _thumbnail_url(client, resources, ada)
    bob_url = await _thumbnail_url(client, resources, bob)
    tighten(media_per_viewer="2/minute")
    # A forged signature is refused before it is counted: it cannot spend ada's.
    forged = ada_url.replace("s=", "s=0")
    for _ in range(3):
        assert (await client.get(forged)).status_code == 403
    for _ in range(2):
        assert (await client.get(ada_url)).status_code in (200, 302)  # local disk, or S3
    refused = await client.get(ada_url)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["cache-control"] == "no-store"
    assert (await client.get(bob_url)).status_code in (200, 302)


async def test_a_limit_lets_requests_through_again_after_its_window(
    client: httpx.AsyncClient, resources: Resources, tighten: Tighten
) -> None:
    ada = await sign_up(client, "ada")
    # Two seconds, so the old window is still there to look at after the wait.
    tighten(mutations_per_user="2 per 2 seconds")
    for i in range(2):
        assert not (await gql(client, UPDATE_BIO, {"bio": f"v{i}"}, token=ada)).get("errors")
    refused = await gql(client, UPDATE_BIO, {"bio": "too soon"}, token=ada)
    await asyncio.sleep(retry_after(refused, 2))
    again = await gql(client, UPDATE_BIO, {"bio": "later"}, token=ada)
    assert again["data"]["updateProfile"]["bio"] == "later", again
    # Both windows of the counter exist now, under one hash tag (one Cluster slot).
    prefix = f"{keys.RATE_LIMIT_PREFIX}:{{"
    names = [name for name in await all_keys(resources.redis, prefix + "*")
             if "/mutations_per_user/" in name]
    assert len(names) == 2, names
    assert len({name.removeprefix(prefix).split("}")[0] for name in names}) == 1, names


async def test_two_app_instances_share_one_count(backend: Backend, app: Starlette) -> None:
    if backend.name != "services":
        pytest.skip("the embedded default's Redis lives in one process")
    settings = backend.settings.model_copy(
        update={"rate_limit_log_in_per_username_and_ip": "3/minute"}
    )
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            instance = create_app(settings)
            await stack.enter_async_context(instance.router.lifespan_context(instance))
            transport = httpx.ASGITransport(app=instance)
            clients.append(await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://pictograph.test")
            ))
        first, second = clients
        await sign_up(first, "ada")
        for client in (first, second, first):
            assert error_codes(await log_in(client, "ada", "wrong password!")) == [
                "UNAUTHENTICATED"
            ]
        retry_after(await log_in(second, "ada", PASSWORD), 60)
        retry_after(await log_in(first, "ada", PASSWORD), 60)


async def test_without_redis_log_in_and_sign_up_fail_closed_the_rest_open(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ada = await sign_up(client, "ada")
    url = await _thumbnail_url(client, resources, ada)
    # Only the limiter loses Redis, so what it decides is all that changes.
    dead = open_redis(Settings(redis_url="redis://127.0.0.1:1/0"))
    monkeypatch.setattr(resources, "rate_limits", RateLimits(dead, resources.settings))
    caplog.set_level(logging.WARNING, "pictograph.cache.rate_limits")
    try:
        for _ in range(2):
            refused = await log_in(client, "ada", PASSWORD)
            assert refused["data"] is None
            assert error_codes(refused) == ["INTERNAL_SERVER_ERROR"]
            assert "cannot be counted" in refused["errors"][0]["message"]
            assert "temporarily unavailable" in refused["errors"][0]["message"]  # as outages
        signed_up = await gql(client, SIGN_UP,
                              {"input": {"username": "bob", "password": PASSWORD}})
        assert error_codes(signed_up) == ["INTERNAL_SERVER_ERROR"]
        assert "cannot be counted" in signed_up["errors"][0]["message"]
        # Capacity limits let requests through rather than take the service down.
        changed = await gql(client, UPDATE_BIO, {"bio": "still here"}, token=ada)
        assert changed["data"]["updateProfile"]["bio"] == "still here", changed
        assert (await client.get(url)).status_code in (200, 302)
    finally:
        await dead.aclose()
    warned = [r.getMessage() for r in caplog.records if "cannot be counted" in r.getMessage()]
    # Said once per limit, not once per request.
    assert sorted(message.split()[2] for message in warned) == [
        "log_in_per_ip", "media_per_viewer", "mutations_per_user", "sign_up_per_ip"
    ]


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/minute", ""])
def test_a_malformed_limit_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PICTOGRAPH_RATE_LIMIT_LOG_IN_PER_IP", value)
    with pytest.raises(SettingsError, match="PICTOGRAPH_RATE_LIMIT_LOG_IN_PER_IP"):
        load_settings()


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_subject("2001:db8:1:2:aaaa::1") == client_subject("2001:db8:1:2:bbbb::9")
    assert client_subject("2001:db8:1:2::1") != client_subject("2001:db8:1:3::1")
    assert client_subject("::ffff:203.0.113.9") == client_subject("203.0.113.9") == "203.0.113.9"
    assert "{" not in client_subject("some{host}") and client_subject(None) == "unknown"

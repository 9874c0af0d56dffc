"""X-Forwarded-For is believed only from the proxies PICTOGRAPH_TRUSTED_PROXIES names:
from anyone else, loopback included, the per-address limits count the real address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.app import create_app
from pictograph.settings import SettingsError, load_settings
from tests.conftest import Backend
from tests.support.graphql import error_codes
from tests.support.processes import process_env, serve
from tests.support.rate_limits import Tighten, client_at, log_in, retry_after, tighten_limits

WRONG = "wrong password!"


async def codes_via(app: Starlette, host: str, forwarded_for: str) -> list[str]:
    async with client_at(app, host, {"X-Forwarded-For": forwarded_for}) as client:
        return error_codes(await log_in(client, "nobody", WRONG))


@pytest.fixture
async def behind_proxy(
    backend: Backend, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Starlette]:
    """An app told that 10.0.0.0/8 and 192.0.2.1 are its proxies, with 2 log-ins per
    address a minute."""
    settings = backend.settings.model_copy(update={"trusted_proxies": "10.0.0.0/8, 192.0.2.1"})
    proxied = create_app(settings)
    async with proxied.router.lifespan_context(proxied):
        tighten_limits(proxied.state.resources, monkeypatch, log_in_per_ip="2/minute")
        yield proxied


async def test_forwarded_for_from_an_untrusted_client_is_ignored(
    app: Starlette, tighten: Tighten
) -> None:
    tighten(log_in_per_ip="2/minute")
    # Loopback is no exception: a local client is not a proxy unless it is named.
    for i in range(2):
        assert await codes_via(app, "127.0.0.1", f"203.0.113.{i}") == ["UNAUTHENTICATED"]
    assert await codes_via(app, "127.0.0.1", "203.0.113.99") == ["RATE_LIMITED"]


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    behind_proxy: Starlette,
) -> None:
    # Through any of the proxies, each client address has its own count.
    for i, proxy in enumerate(("10.1.2.3", "10.200.0.1", "192.0.2.1")):
        for _ in range(2):
            assert await codes_via(behind_proxy, proxy, f"203.0.113.{i}") == ["UNAUTHENTICATED"]
    async with client_at(behind_proxy, "10.9.9.9", {"X-Forwarded-For": "203.0.113.2"}) as c:
        retry_after(await log_in(c, "nobody", WRONG), 60)
    # A client cannot pick its address by writing one in front of the proxy's entry:
    # the nearest address no trusted proxy holds is the client's.
    assert await codes_via(behind_proxy, "10.1.2.3", "198.51.100.1, 203.0.113.1") == [
        "RATE_LIMITED"
    ]
    # Nor by sending the header straight to the app from outside the proxies.
    for _ in range(2):
        assert await codes_via(behind_proxy, "192.0.2.2", "198.51.100.50") == [
            "UNAUTHENTICATED"
        ]
    assert await codes_via(behind_proxy, "192.0.2.2", "198.51.100.51") == ["RATE_LIMITED"]


def test_serve_ignores_forwarded_for_from_localhost(tmp_path: Path) -> None:
    """uvicorn on its own believes X-Forwarded-For from 127.0.0.1: `serve` must not."""
    env = process_env(tmp_path, PICTOGRAPH_RATE_LIMIT_LOG_IN_PER_IP="2/minute")
    query = {"query": 'mutation { logIn(input: {username: "nobody", password: "wrong '
             'password!"}) { token } }'}
    with serve(env, workers=False) as base:
        codes = [
            error_codes(httpx.post(f"{base}/graphql", json=query,
                                   headers={"X-Forwarded-For": f"203.0.113.{i}"}).json())
            for i in range(3)
        ]
    assert codes == [["UNAUTHENTICATED"], ["UNAUTHENTICATED"], ["RATE_LIMITED"]]


@pytest.mark.parametrize("value", ["*", "10.0.0.1/8", "proxy.internal", "10.0.0.1; 10.0.0.2"])
def test_a_malformed_proxy_list_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PICTOGRAPH_TRUSTED_PROXIES", value)
    with pytest.raises(SettingsError, match="PICTOGRAPH_TRUSTED_PROXIES"):
        load_settings()


def test_trusted_proxies_are_read_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICTOGRAPH_TRUSTED_PROXIES", " 10.0.0.1, 172.16.0.0/12 ,fd00::/8")
    assert load_settings().trusted_proxy_list == ["10.0.0.1", "172.16.0.0/12", "fd00::/8"]
    monkeypatch.delenv("PICTOGRAPH_TRUSTED_PROXIES")
    assert load_settings().trusted_proxy_list == []

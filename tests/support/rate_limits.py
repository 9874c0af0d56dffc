"""Helpers for tests of rate limits: a limiter with tighter limits, clients at chosen
addresses, and the RATE_LIMITED answer's retryAfter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from pictograph.cache.rate_limits import RateLimits
from pictograph.resources import Resources
from tests.support.graphql import gql

LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token }
}"""

Tighten = Callable[..., RateLimits]


def tighten_limits(
    resources: Resources, monkeypatch: pytest.MonkeyPatch, **limits: str
) -> RateLimits:
    """Swaps the app's limiter for one with the given limits (the rest as configured)."""
    settings = resources.settings.model_copy(
        update={f"rate_limit_{name}": value for name, value in limits.items()}
    )
    limiter = RateLimits(resources.redis, settings)
    monkeypatch.setattr(resources, "rate_limits", limiter)
    return limiter


@asynccontextmanager
async def client_at(
    app: ASGIApp, host: str, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client the app sees connecting from `host` (its scope["client"])."""
    transport = httpx.ASGITransport(app=app, client=(host, 4000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pictograph.test", headers=headers
    ) as client:
        yield client


def retry_after(result: dict[str, Any], window: int) -> int:
    """The retryAfter of the result's RATE_LIMITED error, checked to lie in the window."""
    limited = [e for e in result.get("errors") or []
               if e["extensions"]["code"] == "RATE_LIMITED"]
    assert limited, result
    seconds = limited[0]["extensions"]["retryAfter"]
    assert isinstance(seconds, int) and 1 <= seconds <= window, limited[0]
    return seconds


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    return await gql(client, LOG_IN, {"u": username, "p": password})

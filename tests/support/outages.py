"""An extra in-process app on settings of a test's choosing (a service away), and what
a plain HTTP route must answer while one is."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from pictograph.app import create_app
from pictograph.settings import Settings

NOBODY = "127.0.0.1:1"  # nothing listens there: every connection is refused at once


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://away") as client:
            yield client


def assert_unavailable(response: httpx.Response, caplog: pytest.LogCaptureFixture,
                       service: str) -> None:
    """503 with Retry-After, nothing of the inside in the body, nothing at ERROR in the
    log and one line there naming the service."""
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "temporarily unavailable" in response.text
    assert "Traceback" not in response.text
    assert [r.levelname for r in caplog.records if r.levelno >= logging.ERROR] == []
    said = [r.getMessage() for r in caplog.records
            if r.name == "pictograph.errors" and "unavailable" in r.getMessage()]
    assert len(said) == 1 and f"{service} unavailable" in said[0], said

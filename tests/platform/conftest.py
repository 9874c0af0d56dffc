"""Fixtures for tests of the platform: the app behind a real server, and the app
configured otherwise (as production would be)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from pictograph.app import create_app

Configured = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    """The test app (its lifespan already running) behind a real uvicorn on a loopback
    port, in this process. log_config=None leaves uvicorn's loggers to propagate, so
    caplog sees what uvicorn logs too (its "Exception in ASGI application" included)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", log_config=None
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = running.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    running.should_exit = True
    await task


@pytest.fixture
async def configured(app: Starlette) -> AsyncIterator[Configured]:
    """Clients of the app with some settings changed. Each borrows the backend app's open
    resources: starting a second app would rebind Tortoise's models process-wide."""
    clients: list[httpx.AsyncClient] = []

    def client_with(**settings: Any) -> httpx.AsyncClient:
        changed = app.state.resources.settings.model_copy(update=settings)
        other = create_app(changed)
        other.state.resources = app.state.resources
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=other),
                                   base_url="http://configured")
        clients.append(client)
        return client

    yield client_with
    for client in clients:
        await client.aclose()

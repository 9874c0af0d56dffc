"""The test's own app served by a real uvicorn on a free loopback port, inside the test's
event loop: real HTTP and real WebSockets against the very resources the test inspects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from pictograph.serving import WEBSOCKET_OPTIONS


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # pytest owns the process's signals; this server is stopped by the test.
        yield


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """Serves an app whose lifespan already ran (the `app` fixture's); yields its base URL.
    `app.state.resources.settings.public_base_url` is left as it is: media URLs minted
    through this server still name the test host, and tests fetch them by path."""
    # log_config=None leaves uvicorn's loggers to propagate, so caplog sees what uvicorn
    # logs too (its "Exception in ASGI application" included). Port 0: the kernel picks.
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                            log_level="warning", log_config=None, ws_max_size=1024 * 1024,
                            **WEBSOCKET_OPTIONS)  # the sockets `serve` makes
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task

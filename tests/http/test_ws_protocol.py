"""The WebSocket settings `pictograph serve` gives uvicorn (issue 24: server memory per
open socket): no permessage-deflate."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from pictograph.serving import _server_options
from pictograph.settings import Settings


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield  # pytest owns the process's signals


@contextlib.asynccontextmanager
async def _served_as_serve_does() -> AsyncIterator[int]:
    options = _server_options(Settings())
    options.update(lifespan="off", log_config=None, log_level="warning")
    config = uvicorn.Config(Starlette(routes=[WebSocketRoute("/ws", _echo)]),
                            host="127.0.0.1", port=0, **options)
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


def _frame(text: str) -> bytes:
    """A masked text frame, as a client sends it (short payloads only)."""
    payload = text.encode()
    mask = os.urandom(4)
    return (bytes([0x81, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def test_serve_takes_no_compression() -> None:
    assert _server_options(Settings())["ws_per_message_deflate"] is False


async def test_a_browser_offering_permessage_deflate_gets_plain_frames() -> None:
    async with _served_as_serve_does() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            # What browsers send.
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            "\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        assert head.startswith("http/1.1 101")
        assert "sec-websocket-extensions" not in head  # no compression negotiated
        writer.write(_frame("hello " * 10))
        first, length = await reader.readexactly(2)
        assert first == 0x81  # FIN + text, RSV1 clear: not compressed
        assert (await reader.readexactly(length)).decode() == "hello " * 10
        writer.close()

"""Light graphql-transport-ws subscribers for bench/live.py: thousands of sockets per
client process, each a bare asyncio.Protocol speaking just enough WebSocket (RFC 6455)
to sign in, subscribe to feedUpdates and note when each POST_ADDED arrives. A full
client library costs tasks and buffers per socket, which at 10,000 sockets would make
the client, not the server, what is measured.

A client process is driven by the bench over a multiprocessing pipe:
  -> ("report", post_id)   <- ("arrivals", post_id, [monotonic seconds], ended)
  -> ("close",)            <- ("closed",)
after it sent ("opened", opened, [errors]) once its sockets are open and subscribed.
Arrival times are time.monotonic(), which on Linux is one clock for every process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import time
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

SUBSCRIBE = json.dumps({"id": "1", "type": "subscribe", "payload": {
    "query": "subscription { feedUpdates { kind postId } }"}}).encode()
PONG = json.dumps({"type": "pong"}).encode()
OPENING_AT_ONCE = 25  # sockets being opened concurrently, per client process
STEP_TIMEOUT = 60.0

TEXT, CLOSE, PING, PONG_FRAME = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: masked, as RFC 6455 requires, with an all-zero key (valid, and the
    payload then goes out as it is)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + b"\0\0\0\0" + payload


class LightSocket(asyncio.Protocol):
    def __init__(self, host: str, token: str, arrivals: dict[str, list[float]]) -> None:
        self.host = host
        self.token = token
        self.arrivals = arrivals
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended: str | None = None
        self.seen: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((
            f"GET /graphql HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[:end + 4]
            if b" 101 " not in status:
                self._end(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            self._send(TEXT, json.dumps({"type": "connection_init", "payload": {
                "authorization": f"Bearer {self.token}"}}).encode())
        self._frames()

    def _frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            at = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, at = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, at = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < at + length:
                return
            payload = bytes(buffer[at:at + length])
            del buffer[:at + length]
            if opcode == TEXT:
                self._message(json.loads(payload))
            elif opcode == PING:
                self._send(PONG_FRAME, payload)
            elif opcode == CLOSE:
                code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
                self._end(f"closed {code} {payload[2:].decode(errors='replace')}")
                return

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "next":
            update = (message["payload"].get("data") or {}).get("feedUpdates") or {}
            post_id = update.get("postId")
            if update.get("kind") == "POST_ADDED" and post_id not in self.seen:
                self.seen.add(post_id)
                self.arrivals.setdefault(post_id, []).append(time.monotonic())
            elif message["payload"].get("errors"):
                self._end(f"error: {message['payload']['errors']}")
        elif kind == "connection_ack":
            self._send(TEXT, SUBSCRIBE)
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif kind == "ping":
            self._send(TEXT, PONG)
        elif kind in ("error", "complete"):
            self._end(f"{kind}: {message.get('payload')}")

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    def _end(self, why: str) -> None:
        self.ended = self.ended or why
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc!r}")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(CLOSE, struct.pack("!H", 1000))
            self.transport.close()


async def _serve(conn: Connection, url: str, tokens: list[str]) -> None:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    arrivals: dict[str, list[float]] = {}
    sockets: list[LightSocket] = []
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    errors: list[str] = []

    async def open_one(token: str) -> bool:
        async with gate:
            try:
                _, socket = await asyncio.wait_for(loop.create_connection(
                    lambda: LightSocket(f"{host}:{port}", token, arrivals), host, port),
                    STEP_TIMEOUT)
                sockets.append(socket)
                await asyncio.wait_for(socket.subscribed, STEP_TIMEOUT)
                return True
            except (OSError, TimeoutError, ConnectionError) as error:
                errors.append(repr(error))
                return False

    opened = sum(await asyncio.gather(*(open_one(t) for t in tokens)))
    conn.send(("opened", opened, errors[:3]))
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    while True:
        command = await commands.get()
        if command[0] == "report":
            ended = sum(1 for s in sockets if s.ended is not None)
            conn.send(("arrivals", command[1], arrivals.get(command[1], []), ended,
                       [s.ended for s in sockets if s.ended][:1]))
        elif command[0] == "close":
            loop.remove_reader(conn.fileno())
            for socket in sockets:
                socket.close()
            await asyncio.sleep(0.5)
            conn.send(("closed",))
            return


def client_process(conn: Connection, url: str, tokens: list[str]) -> None:
    """The entry point of one client process."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, url, tokens))

"""Requests sent one after another on a single HTTP/1.1 connection, to see whether a
server keeps the connection usable after an answer (httpx would quietly open a new one)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import h11


@dataclass
class Sent:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionClosed(AssertionError):
    """The server ended the connection although more requests were to follow."""


async def on_one_connection(address: str, requests: list[Sent]) -> list[Answer]:
    """Each request in turn on one connection, each after the previous answer."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    connection = h11.Connection(h11.CLIENT)
    answers: list[Answer] = []
    try:
        for number, request in enumerate(requests):
            if number:
                if connection.their_state is not h11.DONE or connection.our_state is not h11.DONE:
                    raise ConnectionClosed(f"closed after answer {number}: {answers[-1]}")
                connection.start_next_cycle()
            headers = [("host", address), ("content-length", str(len(request.body))),
                       *request.headers]
            writer.write(connection.send(h11.Request(method=request.method,
                                                     target=request.target, headers=headers)))
            writer.write(connection.send(h11.Data(data=request.body)))
            writer.write(connection.send(h11.EndOfMessage()))
            # A server that closes at once may do so before the drain: what matters
            # is whether its answer came, which reading tells.
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                answers.append(await _answer(reader, connection))
            except ConnectionError as error:
                raise ConnectionClosed(f"request {number} ({request}): {error!r}") from error
    finally:
        writer.close()
    return answers


async def _answer(reader: asyncio.StreamReader, connection: h11.Connection) -> Answer:
    status = 0
    headers: dict[str, str] = {}
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await asyncio.wait_for(reader.read(65_536), 10))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {name.decode(): value.decode() for name, value in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Answer(status, headers, body)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionClosed("the server closed the connection without an answer")

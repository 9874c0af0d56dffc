"""A cap on /graphql request bodies, enforced while they arrive: a body past it gets 413
and is not read further, whether its Content-Length said so up front or it came chunked."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictograph.http.graphql_http import error_response


class BodyLimit:
    """Reads an HTTP request's body up to `max_bytes` and hands it on to `app` whole.

    What the app would hold anyway (it parses the whole body) is all that is ever held.
    The rest of an oversized body is left unread: uvicorn drops what arrives after the
    response without buffering it, so the client, still sending, gets its 413 when done
    (closing instead would reset the socket under it and lose the answer)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, "Content-Length is not a number")(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"Request body too large: the limit is {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body (already read) once more, then the client's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay

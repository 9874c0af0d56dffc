"""Per-request plumbing as plain ASGI middleware: request ids, the ORM context, metrics."""

from __future__ import annotations

import re
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictograph.db import using_database

_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Bounded label values: unknown paths all count as "other".
_ROUTES = ("/graphql", "/healthz", "/readyz", "/media", "/uploads")


def route_label(path: str) -> str:
    for route in _ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


class RequestContextMiddleware:
    """Tags each request with an id, binds the app's ORM context, and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        resources = scope["app"].state.resources
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            # Nothing to tag or count per message, and the socket holds this frame for as
            # long as it is open: only the ORM context.
            with using_database(resources.database):
                await self.app(scope, receive, send)
            return
        status_code = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        # The ORM's connections belong to this app's context, not to a process global,
        # so each request (and each test app) talks to its own database.
        with using_database(resources.database):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = route_label(scope["path"])
                resources.metrics.requests.labels(
                    scope["method"], route, str(status_code)
                ).inc()
                resources.metrics.latency.labels(route).observe(
                    time.perf_counter() - started
                )

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_REQUEST_ID.fullmatch(candidate):
                    return candidate
        return secrets.token_hex(8)

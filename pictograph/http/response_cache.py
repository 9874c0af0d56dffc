"""Rendered responses for signed-in queries, answered before any GraphQL machinery runs.

POST /graphql (or a GET that names a persisted query) with a token that names its user
(accounts/sessions.py) is looked up with one Redis command (cache/responses.py): an MGET
of the token, the viewer's versions, the response and the epochs it is expected to have
recorded, judged here. Only a miss reaches Strawberry, with a Recording in the request's
state: the loaders and the feed record the epoch of every user and post they read, and
the bytes are stored with them if the answer is a query's, has no errors, and nothing
moved the viewer's versions meanwhile.

One request per (viewer, document, variables) renders a missing response; the others
ask again for a moment and then render their own, uncached.

Mutations are never stored: the schema marks a recording uncacheable for any operation
but a query (schema/recording.py). The key is the viewer's id, the document's hash, the
operation's name and the variables it declares (http/declared.py): another viewer's
answer can never be found under it, and the version is the viewer's.

Refused with a 400 before anything runs: two Authorization headers (this would key on
one, the view sign in with the other), and several operations without operationName.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictograph.accounts.sessions import claimed_user_id, token_key
from pictograph.cache.responses import Lookup, Recording, ResponseCache
from pictograph.checkpoints import checkpoint
from pictograph.context import bearer_token
from pictograph.http.body_limit import replay_body
from pictograph.http.declared import Declarations
from pictograph.http.graphql_http import (
    OPERATION_CHECKED,
    TWO_AUTHORIZATIONS,
    error_response,
    repeated_authorization,
)
from pictograph.http.persisted_queries import (
    NOT_FOUND_BODY,
    Operation,
    PersistedQueries,
    RequestError,
    read_operation,
)
from pictograph.resources import Resources
from pictograph.settings import Settings

log = logging.getLogger(__name__)

PATH = "/graphql"
# While another request renders the response: ask again this often, this many times.
WAIT_SECONDS, WAITS = 0.02, 10
# The request's state says a GET names a persisted query: the view runs it (queries only,
# as Strawberry runs any GET) rather than refuse it (see graphql_http.py).
PERSISTED_GET = "persisted_get"


class ResponseCacheMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.ttl = settings.response_ttl
        self.max_bytes = settings.max_request_bytes
        self._caches: dict[int, ResponseCache] = {}
        self.declarations = Declarations(settings.query_cache_size, settings.max_query_tokens)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["path"] != PATH:
            # Handed on rather than awaited here: an open WebSocket holds no frame of
            # this middleware for its whole life.
            return self.app(scope, receive, send)
        return self._graphql_http(scope, receive, send)

    async def _graphql_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if repeated_authorization(scope):  # every method, before anything runs
            await error_response(400, TWO_AUTHORIZATIONS)(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            await self._get(scope, receive, send)
        elif method == "POST":
            await self._post(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is None or not length.isdigit() or int(length) > self.max_bytes:
            await self.app(scope, receive, send)  # BodyLimit answers it as it does today
            return
        raw, receive = await _read_body(receive)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.app(scope, receive, send)
            return
        await self._operation(scope, receive, send, body, from_get=False)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A GET that names a persisted query runs like a POST of it; any other GET goes
        on to the view (GraphiQL's page, or a refusal)."""
        fields = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "extensions" not in fields or "query" in fields:
            await self.app(scope, receive, send)
            return
        try:
            body = {name: orjson.loads(fields[name])
                    for name in ("extensions", "variables") if name in fields}
        except orjson.JSONDecodeError:
            await error_response(400, "extensions and variables must be JSON")(
                scope, receive, send)
            return
        body["operationName"] = fields.get("operationName")
        await self._operation(scope, receive, send, body, from_get=True)

    async def _operation(self, scope: Scope, receive: Receive, send: Send,
                         body: Any, from_get: bool) -> None:
        try:
            operation = read_operation(body)
        except RequestError as error:
            await error_response(400, str(error))(scope, receive, send)
            return
        if operation is None:
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["app"].state.resources
        registry = PersistedQueries(resources.redis, self.settings.persisted_query_ttl)
        known, declared = self.declarations.known(operation.document_hash)
        if not known:
            if operation.query is None:
                # A hash this process has not seen: the registry, once. From then on the
                # hit path reads nothing but the cache.
                try:
                    found = await registry.find(operation.document_hash)
                except RedisError:
                    await self.app(scope, receive, send)  # a 503, as below
                    return
                if found is None:
                    await _answer(send, NOT_FOUND_BODY)
                    return
                operation = operation.with_query(found)
            assert operation.query is not None
            declared = self.declarations.learn(operation.document_hash, operation.query)
        try:
            variables = (declared.key_variables(operation.operation_name, operation.variables)
                         if declared is not None else None)
        except RequestError as error:
            await error_response(400, str(error))(scope, receive, send)
            return
        scope.setdefault("state", {})[OPERATION_CHECKED] = True
        authorization = _headers(scope).get(b"authorization")
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        viewer_id = claimed_user_id(token) if token and self.ttl else None
        if viewer_id is not None and (variables is None or _plainly_not_a_query(operation)):
            viewer_id = None  # nothing to look up or store (or a document that won't parse)
        digest = _digest(operation, variables or {}) if viewer_id is not None else ""
        lookup = Lookup(token_known=False)
        try:
            if viewer_id is not None:
                assert token is not None
                lookup = await self._cache(resources).lookup(viewer_id, token_key(token),
                                                             digest)
                if lookup.hit:
                    resources.metrics.response_cache.labels("hit").inc()
                    await _answer(send, lookup.body)
                    return
            if operation.query is None:
                found = await registry.find(operation.document_hash)
                if found is None:
                    await _answer(send, NOT_FOUND_BODY)
                    return
                operation = operation.with_query(found)
            elif operation.persisted:
                await registry.register(operation.document_hash, operation.query)
        except RedisError:
            # The view answers as it does when Redis is away (a 503), and the lock, if
            # any, expires on its own.
            await self.app(scope, receive, send)
            return
        downstream_scope, downstream_receive = scope, receive
        if from_get:
            downstream_scope = _as_get(scope, operation)
        elif operation.body is not body:
            downstream_scope, downstream_receive = _as_post(scope, receive, operation.body)
        if viewer_id is None or not lookup.token_known:
            if viewer_id is not None and lookup.filling:
                await self._cache(resources).release(viewer_id, digest)
            resources.metrics.response_cache.labels("skip").inc()
            await self.app(downstream_scope, downstream_receive, send)
            return
        if not lookup.filling and lookup.version and not lookup.version.startswith("!"):
            waited = await self._wait_for_fill(resources, viewer_id, token, digest)
            if waited is not None:
                if waited.hit:
                    resources.metrics.response_cache.labels("hit").inc()
                    await _answer(send, waited.body)
                    return
                lookup = waited
        await self._render(downstream_scope, downstream_receive, send, resources,
                           viewer_id, digest, lookup)

    async def _wait_for_fill(self, resources: Resources, viewer_id: int, token: str,
                             digest: str) -> Lookup | None:
        """Another request renders this response: its bytes, or the fill if it gave up.
        None: render it here, uncached (as when Redis goes away meanwhile: the view then
        answers as it does without Redis, instead of the error escaping the app)."""
        for _ in range(WAITS):
            await asyncio.sleep(WAIT_SECONDS)
            try:
                lookup = await self._cache(resources).lookup(viewer_id, token_key(token),
                                                             digest)
            except RedisError:
                return None
            if lookup.hit or lookup.filling or not lookup.token_known:
                return lookup
        return None

    async def _render(self, scope: Scope, receive: Receive, send: Send,
                      resources: Resources, viewer_id: int, digest: str,
                      lookup: Lookup) -> None:
        if not lookup.filling:  # another request's to store, or the viewer is fenced
            resources.metrics.response_cache.labels("miss").inc()
            await self.app(scope, receive, send)
            return
        recording = Recording(viewer_id, self.ttl)
        scope.setdefault("state", {})["recording"] = recording
        captured = _Captured(send)
        try:
            await self.app(scope, receive, captured.send)
        finally:
            await self._finish(resources, viewer_id, digest, lookup, recording, captured)

    async def _finish(self, resources: Resources, viewer_id: int, digest: str,
                      lookup: Lookup, recording: Recording, captured: _Captured) -> None:
        cache = self._cache(resources)
        await checkpoint("responses.rendered")  # read everything, not stored yet
        try:
            if recording.cacheable and captured.cacheable():
                stored = await cache.store(viewer_id, digest, lookup, recording,
                                           captured.body(), recording.lifetime())
                resources.metrics.response_cache.labels("stored" if stored else "miss").inc()
            else:
                await cache.release(viewer_id, digest)
                resources.metrics.response_cache.labels("miss").inc()
            if recording.missing:
                await cache.make_epochs(recording.missing)
        except RedisError as error:
            log.warning("rendered response not stored: redis unavailable (%s)",
                        type(error).__name__)

    def _cache(self, resources: Resources) -> ResponseCache:
        # One per Redis client: the scripts are registered once.
        cache = self._caches.get(id(resources.redis))
        if cache is None or cache.redis is not resources.redis:
            cache = self._caches[id(resources.redis)] = ResponseCache(resources.redis)
        return cache


class _Captured:
    """Passes the response on and keeps a copy of it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.chunks: list[bytes] = []
        self.content_type = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.content_type = dict(message.get("headers", [])).get(b"content-type", b"")
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
        await self._send(message)

    def body(self) -> bytes:
        return b"".join(self.chunks)

    def cacheable(self) -> bool:
        if self.status != 200 or not self.content_type.startswith(b"application/json"):
            return False
        try:
            answer = orjson.loads(self.body())
        except orjson.JSONDecodeError:
            return False
        return isinstance(answer, dict) and "errors" not in answer and "data" in answer


def _plainly_not_a_query(operation: Operation) -> bool:
    """A document that opens with a mutation or subscription (most do, that are): it needs
    no lookup. Any other that is not a query is found out when it runs."""
    return operation.query is not None and operation.query.lstrip().startswith(
        ("mutation", "subscription"))


def _headers(scope: Scope) -> dict[bytes, bytes]:
    # The few this reads, without building starlette's Headers (the hit path is short).
    return {name: value for name, value in scope["headers"]
            if name in (b"content-type", b"content-length", b"authorization")}


def _digest(operation: Operation, variables: dict[str, Any]) -> str:
    """The key of one response: the document, the operation's name and the variables it
    declares (http/declared.py), so invented variables all find one response."""
    named = (operation.document_hash, operation.operation_name or "",
             orjson.dumps(variables, option=orjson.OPT_SORT_KEYS).decode())
    return hashlib.sha256("\0".join(named).encode()).hexdigest()[:32]


async def _answer(send: Send, body: bytes | None) -> None:
    assert body is not None
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"private, no-store"),
    ]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a receive that gives it again to the app behind."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app behind hears it on its next receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    return raw, replay_body(raw, receive)


def _as_get(scope: Scope, operation: Operation) -> Scope:
    """The scope of a GET of the persisted query with its document, for the view."""
    assert operation.query is not None
    fields = {"query": operation.query,
              "variables": orjson.dumps(operation.variables).decode()}
    if operation.operation_name:
        fields["operationName"] = operation.operation_name
    state = {**scope.get("state", {}), PERSISTED_GET: True}
    return {**scope, "query_string": urlencode(fields).encode(), "state": state}


def _as_post(scope: Scope, receive: Receive, body: dict[str, Any]) -> tuple[Scope, Receive]:
    """The scope and body of a POST of `body`: how the view runs a persisted query whose
    document came from the registry."""
    raw = orjson.dumps(body)
    headers = [(name, value) for name, value in scope["headers"]
               if name not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode())]
    posted = {**scope, "method": "POST", "headers": headers, "query_string": b""}
    return posted, replay_body(raw, receive)

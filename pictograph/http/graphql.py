"""The /graphql endpoint: Strawberry's ASGI view with Pictograph's context, a cap on
request bodies, the HTTP rules (graphql_http.py), and the WebSocket rules: a token in
connection_init, and a cap on sockets per user."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from pictograph.cache import keys
from pictograph.context import Context, bearer_token
from pictograph.http.body_limit import BodyLimit
from pictograph.http.graphql_http import GraphQLOverHTTP
from pictograph.schema import PictographSchema
from pictograph.sessions import resolve_token
from pictograph.settings import Settings

MAX_SOCKETS_PER_USER = 5
MAX_SUBSCRIPTIONS_PER_SOCKET = 10
LEASE_SECONDS = 120


class GraphQLEndpoint(GraphQLOverHTTP):
    # Batches (a JSON array body) stay refused with 400, Strawberry's default: a batch
    # runs its operations concurrently on one shared Context (one set of dataloaders,
    # forget_reads after a mutation), and no client of this API sends them.

    def __init__(self, schema: PictographSchema, settings: Settings, **options: Any) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_SOCKET,
            **options,
        )
        self._http = BodyLimit(self.serve_http, settings.max_request_bytes)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            resources=request.app.state.resources,
            connection=request,
            token=bearer_token(request.headers.get("authorization")),
            request_id=request.state.request_id,
        )

    def encode_json(self, data: Any) -> str:
        # Text, not bytes: WebSocket messages of graphql-transport-ws are text frames.
        return orjson.dumps(data).decode()

    async def on_ws_connect(self, context: Context) -> None:
        """The token comes in connection_init; no token or a bad one closes with 4403."""
        params = context.connection_params or {}
        authorization = params.get("authorization") or params.get("Authorization")
        token = bearer_token(authorization if isinstance(authorization, str) else None)
        redis = context.resources.redis
        user_id = await resolve_token(redis, token) if token else None
        if user_id is None:
            raise ConnectionRejectionError()
        context.token = token
        connection_id = secrets.token_hex(8)
        if not await _take_socket_lease(redis, user_id, connection_id):
            raise ConnectionRejectionError()
        assert context.connection is not None
        context.connection.state.live_lease = (user_id, connection_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._http(scope, receive, send)
            return
        renew = asyncio.create_task(_renew_lease_while_open(scope))
        try:
            await super().__call__(scope, receive, send)
        finally:
            renew.cancel()
            lease = scope.get("state", {}).get("live_lease")
            if lease is not None:
                redis = scope["app"].state.resources.redis
                with contextlib.suppress(Exception):
                    await redis.zrem(keys.live_connections(lease[0]), lease[1])


async def _take_socket_lease(redis: Any, user_id: int, connection_id: str) -> bool:
    """A place among the user's sockets, as a lease that lapses if the process dies."""
    key = keys.live_connections(user_id)
    now = time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {connection_id: now + LEASE_SECONDS})
        pipe.zcard(key)
        pipe.expire(key, LEASE_SECONDS)
        _, _, count, _ = await pipe.execute()
    if count > MAX_SOCKETS_PER_USER:
        await redis.zrem(key, connection_id)
        return False
    return True


async def _renew_lease_while_open(scope: Scope) -> None:
    redis = scope["app"].state.resources.redis
    while True:
        await asyncio.sleep(LEASE_SECONDS / 3)
        lease = scope.get("state", {}).get("live_lease")
        if lease is not None:
            key = keys.live_connections(lease[0])
            with contextlib.suppress(Exception):
                await redis.zadd(key, {lease[1]: time.time() + LEASE_SECONDS}, xx=True)
                await redis.expire(key, LEASE_SECONDS)

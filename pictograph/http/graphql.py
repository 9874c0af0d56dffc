"""The /graphql endpoint: Strawberry's ASGI view with Pictograph's context, a cap on
request bodies, the HTTP rules (graphql_http.py), and sockets that live no longer than
their token (sockets.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from pictograph.context import Context, bearer_token
from pictograph.http.body_limit import BodyLimit
from pictograph.http.graphql_http import GraphQLOverHTTP
from pictograph.http.sockets import SocketHandler, sign_in
from pictograph.http.web import graphiql_page
from pictograph.schema import PictographSchema
from pictograph.settings import Settings

MAX_SUBSCRIPTIONS_PER_SOCKET = 10


class GraphQLEndpoint(GraphQLOverHTTP):
    graphql_transport_ws_handler_class = SocketHandler

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
        self._settings = settings
        self.max_query_tokens = settings.max_query_tokens

    async def render_graphql_ide(self, request: Request) -> Response:
        # Pictograph's own page: GraphiQL from the package under a strict CSP, instead
        # of Strawberry's, which loads it from a public CDN.
        return graphiql_page(self._settings)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            resources=request.app.state.resources,
            connection=request,
            token=bearer_token(request.headers.get("authorization")),
            request_id=request.state.request_id,
            recording=getattr(request.state, "recording", None),
        )

    def encode_json(self, data: Any) -> str:
        # Text, not bytes: WebSocket messages of graphql-transport-ws are text frames.
        return orjson.dumps(data).decode()

    async def on_ws_connect(self, context: Context) -> None:
        """The token comes in connection_init; no token or a bad one closes with 4403."""
        context.socket = await sign_in(context)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "websocket":
            return self._http(scope, receive, send)
        # Handed on rather than awaited here: one frame less for as long as it is open.
        return super().__call__(scope, receive, send)

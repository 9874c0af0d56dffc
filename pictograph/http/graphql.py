"""The /graphql endpoint: Strawberry's ASGI view with Pictograph's context."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from pictograph.context import Context, bearer_token


class GraphQLEndpoint(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            resources=request.app.state.resources,
            connection=request,
            token=bearer_token(request.headers.get("authorization")),
            request_id=request.state.request_id,
        )

    def encode_json(self, data: Any) -> bytes:  # type: ignore[override]
        return orjson.dumps(data)

"""GraphQL over HTTP: which requests /graphql runs, and how it refuses the others.

An operation comes as a POST with a JSON object body. A refusal is a 4xx whose body has
the shape of a GraphQL error ({"errors": [{"message", "extensions": {"code"}}]}), so a
client reads every answer the same way, and it is an answer, not an exception: nothing
is logged at ERROR and the connection stays open for the client's next request.

GET runs no operation of its own choosing. A query on GET, like a POST of a form or of
text/plain, is what a page on another site can make a browser send (a "simple" request,
without a CORS preflight), which is how cross-site request forgery works. Pictograph's
tokens travel in the Authorization header, which such a request cannot carry, so the
risk is low; still, nothing a forged request could choose is run. GET serves GraphiQL's
page, and persisted queries named by hash (http/persisted_queries.py): a document
somebody registered, and only if it is a query.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from pictograph.context import Context
from pictograph.http.declared import UNNAMED_OF_SEVERAL, unnamed_of_several

JSON_ONLY = "Send the operation as a POST with Content-Type: application/json"
GET_REFUSED = (
    "GraphQL operations are not accepted over GET (a request that other sites can "
    "forge): POST them with Content-Type: application/json"
)
NOT_AN_OBJECT = 'The request body must be a JSON object: {"query": "...", "variables": {...}}'
NO_QUERY = 'The request body has no "query"'
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions are not served over HTTP: subscribe over a WebSocket at /graphql "
    "(subprotocol graphql-transport-ws)"
)

# Set in a request's state by the response cache's middleware once it has checked that
# the document's operation is chosen (http/declared.py).
OPERATION_CHECKED = "operation_checked"
# This request's OPERATION_CHECKED, from serve_http to parse_http_body (Strawberry's
# request adapter keeps the scope to itself).
_checked: ContextVar[bool] = ContextVar("operation_checked", default=False)
TWO_AUTHORIZATIONS = (
    "The request has more than one Authorization header: send the bearer token once"
)


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A refusal as a GraphQL error. Every one is the client's to fix (BAD_USER_INPUT),
    but a page that is not there (NOT_FOUND)."""
    code = "NOT_FOUND" if status == 404 else "BAD_USER_INPUT"
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status, headers=headers,
    )


class GraphQLOverHTTP(GraphQL[Context, None]):
    """Strawberry's ASGI view with Pictograph's rules for HTTP requests."""

    # Tokens the view parses, at most, to tell a document's operations apart (the
    # schema's own limit; set from the settings by the endpoint).
    max_query_tokens = 1000

    async def serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = self.refusal(request)
        _checked.set(bool(scope.get("state", {}).get(OPERATION_CHECKED)))
        if response is None:
            try:
                response = await self.run(request)
            except HTTPException as error:  # Strawberry's refusals, as plain text
                allow = {"allow": "GET, POST"} if error.status_code == 405 else None
                response = error_response(error.status_code, _explained(error), allow)
        await response(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        """What the request gets instead of reaching Strawberry, if anything."""
        if request.method == "GET":
            if self.should_render_graphql_ide(self.request_adapter_class(request)):
                return None  # GraphiQL's page, or 404 where it is turned off
            if request.scope.get("state", {}).get("persisted_get"):
                return None  # a registered document, named by hash: queries only
            return error_response(400, GET_REFUSED)
        if request.method == "POST" and not _is_json(request.headers.get("content-type")):
            return error_response(415, JSON_ONLY)
        return None

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        # The response cache's middleware checked what it read (OPERATION_CHECKED);
        # anything else is checked here, so every path answers it the same way.
        if (isinstance(data, GraphQLRequestData) and isinstance(data.query, str)
                and not _checked.get()
                and unnamed_of_several(data.query, data.operation_name,
                                       self.max_query_tokens)):
            raise HTTPException(400, UNNAMED_OF_SEVERAL)
        return data

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry reads the body's fields with .get(), which fails on any other JSON
        # value (a 500). A list is a batch, which it refuses itself.
        value = super().parse_json(data)
        if not isinstance(value, dict | list):
            raise HTTPException(400, NOT_AN_OBJECT)
        if isinstance(value, dict) and not isinstance(value.get("operationName"), str | None):
            raise HTTPException(
                400, "The GraphQL operation's `operationName` must be a string or null"
            )
        return value


def repeated_authorization(scope: Scope) -> bool:
    """More than one Authorization header: one part of the server would read one token
    and another the other (the response cache keys on one, the view signs in with one),
    so such a request is refused before anything reads either."""
    return sum(name == b"authorization" for name, _ in scope["headers"]) > 1


def _is_json(content_type: str | None) -> bool:
    # Parsed as Strawberry parses it, which then reads the body as JSON.
    return parse_content_type(content_type or "")[0] == "application/json"


def _explained(error: HTTPException) -> str:
    cause = error.__cause__
    if isinstance(cause, InvalidOperationTypeError):
        if cause.operation_type is OperationType.SUBSCRIPTION:
            return SUBSCRIPTION_OVER_HTTP
    if isinstance(cause, MissingQueryError):
        return NO_QUERY
    return error.reason

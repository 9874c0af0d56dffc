"""How errors reach clients: expected ones with their code, everything else masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext

from pictograph.errors import PictographError
from pictograph.outages import as_unavailable, unavailable_service
from pictograph.schema.limits import token_limit_error

log = logging.getLogger("pictograph.errors")

INTERNAL_MESSAGE = "Internal server error; the request id in the logs says what happened."
# graphql-core appends these to validation and coercion messages; they map the schema
# for whoever cannot introspect it.
_SUGGESTION = re.compile(r" Did you mean [^?]*\?")


def is_expected(error: GraphQLError) -> bool:
    """Errors the client caused or may see: ours, and graphql-core's own parse,
    validation and variable-coercion errors."""
    original = error.original_error
    return original is None or isinstance(original, PictographError | GraphQLError)


def request_id_of(execution_context: ExecutionContext | None) -> str:
    context = execution_context.context if execution_context else None
    return getattr(context, "request_id", "-")


def log_unexpected(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    for error in errors:
        if not is_expected(error):
            original = error.original_error
            service = unavailable_service(original)
            if service is not None:  # an outage: one line per request, not a traceback
                log.warning("request %s: %s unavailable (%s)", request_id_of(execution_context),
                            service, type(original).__name__)
                continue
            log.error(
                "request %s: %s at %s",
                request_id_of(execution_context),
                type(original).__name__,
                ".".join(str(part) for part in error.path or []),
                exc_info=(type(original), original, original.__traceback__) if original else None,
            )


class CodedErrors(SchemaExtension):
    """Gives every error an extensions.code and masks the unexpected ones."""

    _streamed = False

    def __init__(self, hide_suggestions: bool = False) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:  # a streamed operation's results were coded one by one
            self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Subscriptions send each result as it comes, before on_operation's tail runs,
        # so each is coded (and masked) here before it is sent.
        self._streamed = True
        self._code(result)
        yield

    def _code(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if not errors:
            return
        result.errors = [self._client_error(error) for error in errors]
        resources = getattr(self.execution_context.context, "resources", None)
        if resources is not None:
            for error in result.errors:
                resources.metrics.graphql_errors.labels(error.extensions["code"]).inc()

    def _client_error(self, error: GraphQLError) -> GraphQLError:
        if not is_expected(error):
            unavailable = as_unavailable(error.original_error)
            return GraphQLError(
                unavailable.message if unavailable else INTERNAL_MESSAGE,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": "INTERNAL_SERVER_ERROR"},
            )
        if error.extensions and "code" in error.extensions:
            return error
        over_token_limit = token_limit_error(error)
        if over_token_limit is not None:
            return over_token_limit
        # graphql-core's syntax, validation and variable-coercion errors.
        message = _SUGGESTION.sub("", error.message) if self.hide_suggestions else error.message
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**(error.extensions or {}), "code": "BAD_USER_INPUT"},
        )

"""GraphQL types, inputs and enums, and the one Schema with its extensions (query limits,
coded errors). The types are shape: each field hands its question to resolvers/."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.schema import StreamResult
from strawberry.types.execution import ExecutionContext
from strawberry.types.graphql import OperationType

from pictograph.context import Context
from pictograph.schema.errors import CodedErrors, log_unexpected
from pictograph.schema.execution import PlainFieldsFirst, install_direct_resolvers
from pictograph.schema.limits import QueryLimits, limit_extensions
from pictograph.schema.live import Subscription
from pictograph.schema.operation_choice import OneOperationNamed
from pictograph.schema.recording import QueriesOnlyRecorded
from pictograph.schema.root import Mutation, Query
from pictograph.schema.types import DIRECT_RESOLVERS, PostType, UserType
from pictograph.settings import Settings, load_settings


class PictographSchema(strawberry.Schema):
    async def stream(
        self, query: str | None, variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None, *args: Any, **kwargs: Any,
    ) -> StreamResult:
        # Every operation on a WebSocket comes through here with the socket's context;
        # each gets a fresh one (see Context.for_operation). HTTP requests build their
        # own context per request and run through execute().
        if isinstance(context_value, Context):
            context_value = context_value.for_operation()
        return await super().stream(query, variable_values, context_value, *args, **kwargs)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (bad input, wrong password) are answers, not incidents.
        log_unexpected(errors, execution_context)

    async def execute(  # type: ignore[override]
        self,
        *args: Any,
        allowed_operation_types: Iterable[OperationType] | None = None,
        **kwargs: Any,
    ) -> Any:
        # execute() runs a subscription's root field once, as a plain field, and fails
        # on the stream it returns (a 500 and an ERROR for every subscription POSTed):
        # subscriptions run through subscribe() and stream() only, as on the WebSocket.
        # Refused here, the HTTP view answers 400.
        if allowed_operation_types is None:
            allowed_operation_types = OperationType
        allowed = set(allowed_operation_types) - {OperationType.SUBSCRIPTION}
        return await super().execute(*args, allowed_operation_types=allowed, **kwargs)


def build_schema(settings: Settings | None = None) -> PictographSchema:
    """The schema with the query limits of `settings` (the environment's when None)."""
    limits = query_limits(settings or load_settings())
    hide_suggestions = not limits.introspection
    schema = PictographSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[UserType, PostType],
        extensions=[lambda: CodedErrors(hide_suggestions), *limit_extensions(limits),
                    OneOperationNamed, QueriesOnlyRecorded],
        execution_context_class=PlainFieldsFirst,
    )
    install_direct_resolvers(schema._schema, DIRECT_RESOLVERS)
    return schema


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_tokens=settings.max_query_tokens,
        max_cost=settings.max_query_cost,
        max_directives=settings.max_query_directives,
        introspection=settings.introspection,
        cache_size=settings.query_cache_size,
    )

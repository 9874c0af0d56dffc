"""GraphQL types, inputs and enums, and the one Schema. Shape only."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.types.execution import ExecutionContext

from pictograph.schema.errors import CodedErrors, log_unexpected
from pictograph.schema.live import Subscription
from pictograph.schema.posts import PostType
from pictograph.schema.root import Mutation, Query
from pictograph.schema.users import UserType


class PictographSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (bad input, wrong password) are answers, not incidents.
        log_unexpected(errors, execution_context)


def build_schema() -> PictographSchema:
    return PictographSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[UserType, PostType],
        extensions=[CodedErrors],
    )

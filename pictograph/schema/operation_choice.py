"""A document with several operations runs only the one its request names (GraphQL's
GetOperation): without operationName it is a request error. Strawberry would take the
first operation's name as the one asked for. Over HTTP the middleware and the view answer
it with a 400 first (http/declared.py); this covers every other way in, sockets included,
as an error for that operation."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

UNNAMED_OF_SEVERAL = (
    "The document has several operations: name the one to run in operationName"
)


class OneOperationNamed(SchemaExtension):
    """After validation's own hook (CachedValidation), so its errors are kept too."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # The name the request gave: Strawberry's operation_name falls back to the first
        # operation's, which is what must not happen here.
        named = getattr(context, "_provided_operation_name", None)
        if document is not None and named is None and sum(
                isinstance(node, OperationDefinitionNode)
                for node in document.definitions) > 1:
            error = GraphQLError(UNNAMED_OF_SEVERAL, extensions={"code": "BAD_USER_INPUT"})
            context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield

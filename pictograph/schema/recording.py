"""Only a query's answer may be stored as a rendered response (http/response_cache.py):
the request does not say what it runs until its document is parsed, and this is where it
is, once, for every request."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType


class QueriesOnlyRecorded(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        recording = getattr(self.execution_context.context, "recording", None)
        if recording is not None and (
            self.execution_context.operation_type is not OperationType.QUERY
        ):
            recording.cacheable = False
        yield

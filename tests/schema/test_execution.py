"""The executor's short way for plain fields answers exactly as graphql-core's own way,
errors included (a small schema inline, as in Strawberry's tests)."""

from __future__ import annotations

from enum import Enum

import strawberry

from pictograph.schema.execution import PlainFieldsFirst


@strawberry.enum
class Shade(Enum):
    LIGHT = "light"


@strawberry.type
class Item:
    name: str
    shade: Shade
    count: int
    missing: str  # set to None below: a non-null field without a value

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return [Item(name="a", shade=Shade.LIGHT, count=1, missing="m"),
                Item(name="b", shade=Shade.LIGHT, count=2, missing=None),  # type: ignore[arg-type]
                Item(name="c", shade=Shade.LIGHT, count="three", missing="m")]  # type: ignore[arg-type]


DOCUMENT = "{ items { name shade count missing shout } }"


def run(execution_context_class: type | None) -> strawberry.types.ExecutionResult:
    schema = strawberry.Schema(query=Query, execution_context_class=execution_context_class)
    return schema.execute_sync(DOCUMENT)


def test_plain_fields_answer_as_graphql_core_does_errors_included() -> None:
    usual, short = run(None), run(PlainFieldsFirst)
    assert short.data == usual.data == {"items": [
        {"name": "a", "shade": "LIGHT", "count": 1, "missing": "m", "shout": "A"},
        None,
        None,
    ]}
    assert short.errors is not None and usual.errors is not None
    assert [(e.message, e.path) for e in short.errors] == [
        (e.message, e.path) for e in usual.errors
    ]
    assert [e.path for e in short.errors] == [["items", 1, "missing"], ["items", 2, "count"]]

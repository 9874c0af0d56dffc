"""The executor's short way for plain fields answers exactly as graphql-core's own way,
errors included (a small schema inline, as in Strawberry's tests)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import strawberry
import strawberry.extensions.field_extension
from graphql import GraphQLObjectType
from graphql.execution.executor import Executor

from pictograph.schema import build_schema
from pictograph.schema.execution import PlainFieldsFirst, install_direct_resolvers
from pictograph.schema.types import DIRECT_RESOLVERS


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


def test_plain_fields_take_the_short_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strawberry hands the executor an empty middleware manager on every request; the
    short way must still be taken (it once was not, for any field)."""
    usual_way: list[str] = []
    original = Executor.execute_field

    def counted(self: Executor, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        usual_way.append(details[0].node.name.value)
        return original(self, parent_type, source, details, *rest)

    monkeypatch.setattr(Executor, "execute_field", counted)
    run(PlainFieldsFirst)
    # items; a: shout; b: missing (null); c: count (not an Int). An item's first error
    # ends that item.
    assert usual_way == ["items", "shout", "missing", "count"]
    usual_way.clear()
    run(None)
    assert usual_way.count("name") == 3


@strawberry.type
class Guarded:
    @strawberry.field(permission_classes=[])
    def plain(self) -> str:
        return "plain"

    @strawberry.field(extensions=[strawberry.extensions.field_extension.FieldExtension()])
    def extended(self) -> str:
        return "extended"


@strawberry.type
class GuardedQuery:
    @strawberry.field
    def guarded(self) -> Guarded:
        return Guarded()


def test_direct_resolvers_replace_strawberrys_wrapper_only_where_it_adds_nothing() -> None:
    schema = strawberry.Schema(query=GuardedQuery, execution_context_class=PlainFieldsFirst)
    install_direct_resolvers(schema._schema, {("Guarded", "plain"): lambda source, info: "direct"})
    assert schema.execute_sync("{ guarded { plain } }").data == {"guarded": {"plain": "direct"}}
    with pytest.raises(ValueError, match=r"Guarded\.extended needs Strawberry.s wrapper"):
        install_direct_resolvers(schema._schema,
                                 {("Guarded", "extended"): lambda source, info: "direct"})


def test_the_feeds_post_fields_resolve_directly() -> None:
    post = build_schema()._schema.type_map["Post"]
    assert isinstance(post, GraphQLObjectType)
    for (type_name, field_name), resolve in DIRECT_RESOLVERS.items():
        assert type_name == "Post" and post.fields[field_name].resolve is resolve

"""A shorter way through graphql-core's executor for plain fields.

Most fields of a page are an attribute read: `caption`, `username`, a photo's `width`.
For each, graphql-core still builds a resolve info (16 values), a list of nodes, and
walks its value completion, which made up about a third of an uncached feed's CPU. A plain
field here is one Strawberry resolves by reading the attribute (no resolver, no field
extensions: `is_basic_field`) and whose type is a scalar or an enum. Its value is read
by Strawberry's own resolver and serialized by its type, as graphql-core would; any
other case (a null, a value that does not serialize, middleware) goes the usual way,
which then reports the error exactly as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from inspect import isawaitable
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class PlainField(NamedTuple):
    leaf: GraphQLLeafType  # what serializes the value
    read: Callable[[Any, str], Any]  # Strawberry's default resolver: (source, python name)
    python_name: str


# Per schema: (type name, field name) -> each plain field.
_PLAIN_FIELDS: WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], PlainField]] = (
    WeakKeyDictionary()
)
# Values that are never awaitable: no need to ask (inspect.isawaitable is not free).
_SCALARS = frozenset({str, int, float, bool})


def plain_fields(schema: GraphQLSchema) -> dict[tuple[str, str], PlainField]:
    found = _PLAIN_FIELDS.get(schema)
    if found is None:
        found = _PLAIN_FIELDS[schema] = {}
        for named in schema.type_map.values():
            if not is_object_type(named) or named.name.startswith("__"):
                continue
            for name, field in named.fields.items():
                definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
                leaf = get_named_type(field.type)
                if (isinstance(definition, StrawberryField) and definition.is_basic_field
                        and getattr(field.resolve, "_is_default", False)
                        and is_leaf_type(leaf)):
                    found[named.name, name] = PlainField(
                        leaf, definition.default_resolver, definition.python_name)
    return found


def install_direct_resolvers(
    schema: GraphQLSchema, resolvers: Mapping[tuple[str, str], Callable[..., object]]
) -> None:
    """Let graphql-core call each of `resolvers` itself, as (source, info, **arguments),
    in place of Strawberry's wrapper around the field's method. Only for fields that
    wrapper adds nothing to: no field extensions, no permission classes."""
    for (type_name, field_name), resolve in resolvers.items():
        named = schema.type_map[type_name]
        assert is_object_type(named)
        field = named.fields[field_name]
        definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        assert isinstance(definition, StrawberryField)
        if definition.extensions or definition.permission_classes:
            raise ValueError(f"{type_name}.{field_name} needs Strawberry's wrapper")
        field.resolve = resolve


class PlainFieldsFirst(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry hands over a manager on every request, empty unless an extension
        # resolves fields: only then must each field go the usual way.
        manager = self.middleware_manager
        self.plain = {} if manager and manager.middlewares else plain_fields(self.schema)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """The plain fields of a selection read here, in one loop (no resolve info, no
        path, no value completion); the others graphql-core executes, and the answer
        keeps the selection's order."""
        plain = self.plain
        if not plain:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        type_name = parent_type.name
        values: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for response_name, field_details_list in grouped_field_set.items():
            name = field_details_list[0].node.name.value
            field = plain.get((type_name, name))
            value = None if field is None else _plain_value(field, source_value)
            if value is None:
                rest[response_name] = field_details_list
            else:
                values[response_name] = value
        if not rest:
            return values
        if not values:
            return super().execute_fields(parent_type, source_value, path, rest,
                                          position_context)
        executed = super().execute_fields(parent_type, source_value, path, rest,
                                          position_context)
        if self.is_awaitable(executed):
            return _in_order_later(grouped_field_set, values, executed)
        return _in_order(grouped_field_set, values, executed)


def _plain_value(field: PlainField, source: Any) -> Any:
    """The field's serialized value, or None where graphql-core's way must answer (a
    null, a value that does not serialize: it then reports the error as before)."""
    try:
        # What Strawberry's resolver of a basic field does, without the two calls around.
        value = field.read(source, field.python_name)
        if value is None or (type(value) not in _SCALARS and isawaitable(value)):
            return None
        coerced = field.leaf.coerce_output_value(value)
    except Exception:
        return None
    return None if coerced is Undefined else coerced


def _in_order(selection: GroupedFieldSet, plain: dict[str, Any],
              executed: dict[str, Any]) -> dict[str, Any]:
    return {name: plain[name] if name in plain else executed[name]
            for name in selection if name in plain or name in executed}


async def _in_order_later(selection: GroupedFieldSet, plain: dict[str, Any],
                          executed: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return _in_order(selection, plain, await executed)

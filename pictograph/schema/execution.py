"""A shorter way through graphql-core's executor for plain fields.

Most fields of a page are an attribute read: `caption`, `username`, a photo's `width`.
For each, graphql-core still builds a resolve info (16 values), a list of nodes, and
walks its value completion, which made up about a third of a warm feed's CPU. A plain
field here is one Strawberry resolves by reading the attribute (no resolver, no field
extensions: `is_basic_field`) and whose type is a scalar or an enum. Its value is read
by Strawberry's own resolver and serialized by its type, as graphql-core would; any
other case (a null, a value that does not serialize, middleware) goes the usual way,
which then reports the error exactly as before.
"""

from __future__ import annotations

from typing import Any
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
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# Per schema: (type name, field name) -> the leaf type of each plain field.
_PLAIN_FIELDS: WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], GraphQLLeafType]] = (
    WeakKeyDictionary()
)


def plain_fields(schema: GraphQLSchema) -> dict[tuple[str, str], GraphQLLeafType]:
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
                    found[named.name, name] = leaf
    return found


class PlainFieldsFirst(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain = {} if self.middleware_manager else plain_fields(self.schema)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        name = field_details_list[0].node.name.value
        leaf = self.plain.get((parent_type.name, name))
        if leaf is not None:
            resolve = parent_type.fields[name].resolve
            assert resolve is not None
            try:
                value = resolve(source, None)  # Strawberry's attribute read takes no info
                coerced = None if value is None or self.is_awaitable(value) else (
                    leaf.coerce_output_value(value))
            except Exception:  # the usual way below reports it
                coerced = None
            if coerced is not None and coerced is not Undefined:
                return coerced
        return super().execute_field(parent_type, source, field_details_list, path,
                                     position_context)

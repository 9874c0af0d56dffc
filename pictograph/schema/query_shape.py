"""How big one GraphQL operation is: depth, aliases and cost, measured from its document
against the schema, each fragment once however often it is spread; and how many
directives its document holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    Visitor,
    get_named_type,
    visit,
)
from graphql.pyutils import Undefined

from pictograph.errors import BadUserInput
from pictograph.schema.pagination import MAX_PAGE, page_size

# Their subtrees are bounded by graphql-core's MaxIntrospectionDepthRule instead: the
# standard introspection query is deeper than any limit that suits application queries.
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Shape:
    depth: int  # fields on the longest path, the leaf included
    aliases: int  # counted once per use of the fragment that holds them
    cost: int  # fields that will resolve, each connection's children times its page size


_EMPTY = Shape(0, 0, 0)


class _Measure:
    """Measures selections against the schema, each fragment once per operation.

    Tolerates invalid documents (unknown fields, fragments or cycles) because validation
    rules run side by side: the rules that own those mistakes report them."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.variable_defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        self.done: dict[str, Shape] = {}
        self.open: set[str] = set()

    def operation(self, operation: OperationDefinitionNode) -> Shape:
        root = self.schema.get_root_type(operation.operation)
        return self.selections(operation.selection_set, root)

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> Shape:
        depth = aliases = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                shape = self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                shape = self.selections(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                shape = self.fragment(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            depth = max(depth, shape.depth)
            aliases += shape.aliases
            cost += shape.cost
        return Shape(depth, aliases, cost)

    def fragment(self, name: str) -> Shape:
        if name in self.done:
            return self.done[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.open:
            return _EMPTY
        self.open.add(name)
        shape = self.selections(
            fragment.selection_set, self.schema.get_type(fragment.type_condition.name.value)
        )
        self.open.discard(name)
        self.done[name] = shape
        return shape

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Shape:
        alias = 1 if node.alias else 0
        if node.selection_set is None or node.name.value in INTROSPECTION_ROOTS:
            return Shape(1, alias, 1)
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(node.name.value)
        inner = self.selections(
            node.selection_set, get_named_type(definition.type) if definition else None
        )
        items = self.page_size(node, definition) if definition and "first" in definition.args else 1
        return Shape(inner.depth + 1, alias + inner.aliases, 1 + items * inner.cost)

    def page_size(self, node: FieldNode, definition: GraphQLField) -> int:
        """The page a connection field will load, as the resolvers' page_size decides it."""
        value = definition.args["first"].default_value
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = self.value(argument.value, value)
        if value is Undefined:
            value = None
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return MAX_PAGE  # not an Int: execution refuses it; count the worst meanwhile
        try:
            return page_size(value)
        except BadUserInput:  # negative: execution refuses it before loading anything
            return 0

    def value(self, node: ValueNode, default: Any) -> Any:
        if isinstance(node, VariableNode):
            name = node.name.value
            if name in self.variables:
                return self.variables[name]
            declared = self.variable_defaults.get(name)
            return default if declared is None else self.value(declared, default)
        if isinstance(node, IntValueNode):
            return int(node.value)
        return getattr(node, "value", None)  # null, or a literal validation refuses


def measure(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None = None,
) -> Shape:
    return _Measure(schema, fragments, operation, variables or {}).operation(operation)


def fragments_of(definitions: Any) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


class _DirectiveCount(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def enter_directive(self, _node: DirectiveNode, *_: Any) -> None:
        self.count += 1


def count_directives(document: DocumentNode) -> int:
    """Directives written anywhere in the document, each fragment's once. graphql-core's
    visit walks without recursion, so no document is too deep for it."""
    counter = _DirectiveCount()
    visit(document, counter)
    return counter.count

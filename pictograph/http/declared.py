"""What a GraphQL document declares, per operation: its variables and their defaults.

The response cache keys a response on the operation's declared variables only, with
their defaults applied, so variables a client adds that the operation does not declare
cannot multiply a viewer's cached responses. A document is parsed once per process and
kept by its hash (a small LRU, like the schema's query cache), so a repeat is not parsed
again, not even on the hit path.

A document with several operations and no operationName is a request error (GraphQL
over HTTP; the spec's GetOperation): Strawberry would run the first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from graphql.utilities import value_from_ast_untyped

from pictograph.http.persisted_queries import RequestError
from pictograph.schema.operation_choice import UNNAMED_OF_SEVERAL

_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class Declared:
    """Each operation's name (None for an anonymous one) and its variables' defaults."""

    operations: dict[str | None, dict[str, Any]]

    def chosen(self, name: str | None) -> dict[str, Any] | None:
        """The variables of the operation the request runs; None when it names none of
        them (the view answers that). Several operations and no name raise RequestError."""
        if name is None:
            if len(self.operations) > 1:
                raise RequestError(UNNAMED_OF_SEVERAL)
            return next(iter(self.operations.values()), None)
        return self.operations.get(name)

    def key_variables(self, name: str | None, variables: dict[str, Any]) -> dict[str, Any]:
        """What the response depends on: the declared variables sent, the defaults of the
        others that have one. Anything else the client sent is not the operation's."""
        declared = self.chosen(name)
        if declared is None:
            return variables  # the view refuses it; the key does not matter
        keyed = {}
        for variable, default in declared.items():
            if variable in variables:
                keyed[variable] = variables[variable]
            elif default is not _NO_DEFAULT:
                keyed[variable] = default
        return keyed


def declared(query: str, max_tokens: int) -> Declared | None:
    """None for a document that does not parse (or is past the token limit): the view
    then answers it, and nothing of it is cached."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return None
    operations: dict[str | None, dict[str, Any]] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = definition.name.value if definition.name else None
            operations[name] = {
                variable.variable.name.value: (
                    _NO_DEFAULT if variable.default_value is None
                    else value_from_ast_untyped(variable.default_value))
                for variable in definition.variable_definitions or ()
            }
    return Declared(operations)


def unnamed_of_several(query: str, operation_name: str | None, max_tokens: int) -> bool:
    if operation_name is not None:
        return False
    found = declared(query, max_tokens)
    return found is not None and len(found.operations) > 1


class Declarations:
    """Per process: what each document declares, by its hash (least recently used out)."""

    def __init__(self, size: int, max_tokens: int) -> None:
        self.size = size
        self.max_tokens = max_tokens
        self._by_hash: OrderedDict[str, Declared | None] = OrderedDict()

    def known(self, document_hash: str) -> tuple[bool, Declared | None]:
        if document_hash not in self._by_hash:
            return False, None
        self._by_hash.move_to_end(document_hash)
        return True, self._by_hash[document_hash]

    def learn(self, document_hash: str, query: str) -> Declared | None:
        found = self._by_hash[document_hash] = declared(query, self.max_tokens)
        while len(self._by_hash) > max(self.size, 1):
            self._by_hash.popitem(last=False)
        return found

"""What one GraphQL operation may ask for: depth, aliases, tokens, directives and cost,
checked before anything runs, on HTTP and WebSocket alike; and how much work validating
it may take.

Strawberry's MaxTokensLimiter, ParserCache and DisableIntrospection are used as they are
(ParserCache with one fix, below); its ValidationCache is replaced by CachedValidation,
which counts directives first and caps validation. Its QueryDepthLimiter and
MaxAliasesLimiter are not: both walk a fragment again each time it is spread, so fragments
that each spread the next one twice cost them 2^levels steps: half a second of CPU on the
event loop at 17 levels (measured), hours at 30, which fit in ~400 tokens. query_shape
measures each fragment once, gives the real depth for the message, and adds what
Strawberry lacks: the cost of list sizes times nesting.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    validate,
)
from graphql.utilities import get_operation_ast
from graphql.validation import MaxIntrospectionDepthRule, OverlappingFieldsCanBeMergedRule
from graphql.validation.rules.max_introspection_depth_rule import MAX_LIST_DEPTH
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import (
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from pictograph.errors import QueryTooComplex
from pictograph.schema.query_shape import count_directives, fragments_of, measure

# Validation stops at this many errors (graphql-core's default is 100) and says so: a
# client fixing a query needs the first few, and a document built to be wrong everywhere
# (graphql-cop's "directive overloading") gets no more work or answer than that.
MAX_VALIDATION_ERRORS = 5
# graphql-core checks that fields sharing a response name can merge by comparing them
# in pairs, so n copies of a field cost n * n: 248 copies of `viewer { id }` (a 3 kB
# body within every other limit) took a second of CPU. It meters that work in steps
# (two per pair of fields compared) but allows 500,000 of them; ours allows 10,000,
# a few milliseconds, less than the other rules spend on a document of 1,000 tokens.
# Real pages spend under 100: the README's feed page none, three fragments that each
# repeat `id` and `__typename` 69.
FIELD_MERGE_BUDGET = 10_000

_TOKEN_LIMIT = re.compile(
    r"Syntax Error: Document contains more than (\d+) tokens\. Parsing aborted\."
)


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    max_directives: int
    introspection: bool
    # Parsed and validated documents kept (each, per process).
    cache_size: int


def too_complex(message: str, limit: str, maximum: int, nodes: Any = None) -> GraphQLError:
    error = QueryTooComplex(message, limit=limit, maximum=maximum)
    return GraphQLError(message, nodes, original_error=error, extensions=error.extensions)


def token_limit_error(error: GraphQLError) -> GraphQLError | None:
    """graphql-core's parser aborts past MaxTokensLimiter's count with a plain syntax
    error; this is that error as the limit it is."""
    match = _TOKEN_LIMIT.fullmatch(error.message)
    if not isinstance(error, GraphQLSyntaxError) or match is None:
        return None
    maximum = int(match.group(1))
    return too_complex(f"query token count exceeds the limit of {maximum}", "tokens", maximum)


def shape_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """Depth and aliases of every operation in the document. A validation rule, so the
    CachedValidation keeps its verdict with the document's: built once per schema, since
    the cache's key holds the rule classes."""

    class ShapeLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            definitions = context.document.definitions
            fragments = fragments_of(definitions)
            for operation in definitions:
                if isinstance(operation, OperationDefinitionNode):
                    self._check(context.schema, fragments, operation)

        def _check(
            self,
            schema: GraphQLSchema,
            fragments: Mapping[str, FragmentDefinitionNode],
            operation: OperationDefinitionNode,
        ) -> None:
            try:
                shape = measure(schema, fragments, operation)
            except RecursionError:  # a chain of fragments longer than the stack
                self.report_error(
                    too_complex(
                        f"query depth exceeds the limit of {max_depth}", "depth", max_depth,
                        operation,
                    )
                )
                return
            if shape.depth > max_depth:
                self.report_error(
                    too_complex(
                        f"query depth {shape.depth} exceeds the limit of {max_depth}",
                        "depth", max_depth, operation,
                    )
                )
            if shape.aliases > max_aliases:
                self.report_error(
                    too_complex(
                        f"query alias count {shape.aliases} exceeds the limit of {max_aliases}",
                        "aliases", max_aliases, operation,
                    )
                )

    return ShapeLimits


class IntrospectionDepth(MaxIntrospectionDepthRule):
    """graphql-core's guard against introspection that nests lists of types (fields of
    the type of a field of ...), one of its standard rules, coded like the other limits."""

    def report_error(self, error: GraphQLError) -> None:
        super().report_error(
            too_complex(
                f"introspection list nesting exceeds the limit of {MAX_LIST_DEPTH - 1}",
                "introspection_depth", MAX_LIST_DEPTH - 1, error.nodes,
            )
        )


class BoundedFieldMerging(OverlappingFieldsCanBeMergedRule):
    """graphql-core's field-merging rule on FIELD_MERGE_BUDGET instead of its own budget,
    its abort coded like the other limits."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = FIELD_MERGE_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if self.rule_context.remaining_complexity_budget >= 0:
                raise
            error = too_complex(
                f"query field merging exceeds the limit of {FIELD_MERGE_BUDGET} steps",
                "field_merging", FIELD_MERGE_BUDGET,
            )
            # validate() ends on a ValidationAbortedError and reports it as it is.
            raise ValidationAbortedError(
                error.message, original_error=error.original_error, extensions=error.extensions
            ) from None


# graphql-core's rules replaced by the same rule with Pictograph's limit and code.
_REPLACED: dict[type[ASTValidationRule], type[ASTValidationRule]] = {
    MaxIntrospectionDepthRule: IntrospectionDepth,
    OverlappingFieldsCanBeMergedRule: BoundedFieldMerging,
}


class LimitRules(SchemaExtension):
    """Adds the shape rule and puts the coded, bounded rules in place of graphql-core's.

    The rule classes are the same objects on every request: CachedValidation's key holds them."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...]) -> None:
        super().__init__()
        self.rules = rules

    # At validation, ahead of CachedValidation's hook (limit_extensions keeps that order),
    # not for the whole operation: an on_operation hook is held open until the operation
    # ends, which for a subscription is as long as it stays open.
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = tuple(
            _REPLACED.get(rule, rule) for rule in context.validation_rules
        ) + self.rules
        yield


class CachedParse(ParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is left to
    Strawberry's own parse. Raised from this hook, the syntax error would skip the end of
    every on_operation (CodedErrors' among them) and reach the client uncoded; raised
    from the parse step, it is an answer like any other. Failed parses are not cached
    either way (lru_cache keeps no exceptions), so this costs one more bounded parse."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


class CachedValidation(SchemaExtension):
    """Strawberry's ValidationCache, with the directive limit checked first and
    validation capped at MAX_VALIDATION_ERRORS (Strawberry's validate_document passes
    graphql-core no max_errors). A document's verdict is kept, as there, per document
    object (CachedParse hands out the same one for the same text) and rule classes."""

    def __init__(self, maxsize: int, max_directives: int) -> None:
        super().__init__()
        self.validate = _validation_cache(maxsize)
        self.max_directives = max_directives

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = self.validate(
            context.schema._schema, context.graphql_document, context.validation_rules,
            self.max_directives,
        )
        yield


@cache
def _validation_cache(maxsize: int) -> Callable[..., list[GraphQLError]]:
    return lru_cache(maxsize=maxsize)(_validate)


def _validate(
    schema: GraphQLSchema,
    document: Any,
    rules: tuple[type[ASTValidationRule], ...],
    max_directives: int,
) -> list[GraphQLError]:
    directives = count_directives(document)
    if directives > max_directives:  # refused before any rule visits one of them
        return [too_complex(
            f"query directive count {directives} exceeds the limit of {max_directives}",
            "directives", max_directives,
        )]
    # The two rules Strawberry's own validate_document adds to every validation.
    rules = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
    return validate(schema, document, rules, max_errors=MAX_VALIDATION_ERRORS)


class CostLimit(SchemaExtension):
    """The cost of the operation about to run, with this request's variables (a `first`
    is often one): decided after validation, before execution."""

    def __init__(self, max_cost: int) -> None:
        super().__init__()
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        # Runs after CachedValidation has put the (cached) validation errors in place;
        # an invalid document is refused for what is wrong with it, not measured.
        context = self.execution_context
        document = context.graphql_document
        if not context.pre_execution_errors and document is not None:
            error = self._check(context.schema._schema, document, context.operation_name)
            if error is not None:
                context.pre_execution_errors = [error]
        yield

    def _check(
        self, schema: GraphQLSchema, document: Any, operation_name: str | None
    ) -> GraphQLError | None:
        operation = get_operation_ast(document, operation_name)
        if operation is None:  # graphql-core's execution reports the unknown name
            return None
        try:
            cost = measure(
                schema, fragments_of(document.definitions), operation,
                self.execution_context.variables,
            ).cost
        except RecursionError:  # a chain of fragments longer than the stack
            message = f"query cost exceeds the limit of {self.max_cost}"
        else:
            if cost <= self.max_cost:
                return None
            message = f"query cost {cost} exceeds the limit of {self.max_cost}"
        return too_complex(message, "cost", self.max_cost, operation)


def limit_extensions(limits: QueryLimits) -> list[Callable[[], SchemaExtension]]:
    """The schema's extensions for the limits, in the order they must run: parse options
    are set up in on_operation, then the cached parse, the rules (LimitRules), the cached
    validation, and the cost last, as it only measures documents that passed."""
    rules = (shape_rule(limits.max_depth, limits.max_aliases),)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: LimitRules(rules),
    ]
    if not limits.introspection:
        extensions.append(DisableIntrospection)
    extensions += [
        lambda: CachedParse(maxsize=limits.cache_size),
        lambda: CachedValidation(limits.cache_size, limits.max_directives),
        lambda: CostLimit(limits.max_cost),
    ]
    return extensions

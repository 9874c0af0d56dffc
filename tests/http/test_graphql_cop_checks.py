"""graphql-cop's checks (dolevf/graphql-cop on GitHub, lib/tests/), replayed here since CI
cannot run the scanner: each sends graphql-cop's own request and flags what graphql-cop
would flag, a little stricter where its test is loose. On production settings
(introspection and GraphiQL off) none may flag; on the development defaults only the
conveniences the README documents: introspection, GraphiQL and name suggestions."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.conftest import Configured

Check = Callable[[httpx.AsyncClient], Awaitable[bool]]
# graphql-cop's own header; the scanner sends no Accept of its own but requests' */*.
HEADERS = {"user-agent": "graphql-cop/1.15", "accept": "*/*"}
DEVELOPMENT_DEFAULTS = {"introspection", "detect_graphiql", "field_suggestions"}


async def graph_query(client: httpx.AsyncClient, payload: str, *, batch: bool = False) -> Any:
    """graphql-cop's graph_query: a JSON POST, or a batch of ten; None if not JSON."""
    body: Any = [{"query": payload}] * 10 if batch else {"query": payload, "operationName": "cop"}
    return answer_of(await client.post("/graphql", json=body, headers=HEADERS))


def answer_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        return None


def data_of(answer: Any) -> dict[str, Any]:
    return (answer.get("data") if isinstance(answer, dict) else None) or {}


def errors_of(answer: Any) -> list[dict[str, Any]]:
    return (answer.get("errors") if isinstance(answer, dict) else None) or []


async def field_suggestions(client: httpx.AsyncClient) -> bool:
    answer = await graph_query(client, "query cop { __schema { directive } }")
    return any("Did you mean" in error["message"] for error in errors_of(answer))


async def introspection(client: httpx.AsyncClient) -> bool:
    answer = await graph_query(client, "query cop { __schema { types { name fields { name } } } }")
    return bool(data_of(answer).get("__schema"))


async def detect_graphiql(client: httpx.AsyncClient) -> bool:
    response = await client.get("/graphql", headers={**HEADERS, "accept": "text/html"})
    heuristics = ("graphiql.min.css", "GraphQL Playground", "GraphiQL", "graphql-playground")
    return any(word in response.text for word in heuristics)


async def get_method_support(client: httpx.AsyncClient) -> bool:
    response = await client.get(
        "/graphql", params={"query": "query cop {__typename}"}, headers=HEADERS
    )
    return bool(data_of(answer_of(response)))


async def alias_overloading(client: httpx.AsyncClient) -> bool:
    aliases = "".join(f"alias{i}:__typename \n" for i in range(101))
    answer = await graph_query(client, "query cop { " + aliases + " }")
    return bool(data_of(answer))


async def batch_query(client: httpx.AsyncClient) -> bool:
    answer = await graph_query(client, "query cop { __typename }", batch=True)
    return isinstance(answer, list)


async def trace_mode(client: httpx.AsyncClient) -> bool:
    answer = await graph_query(client, "query cop { __typename }")
    return "tracing" in json.dumps(answer).lower()


async def directive_overloading(client: httpx.AsyncClient) -> bool:
    """graphql-cop flags exactly ten errors, one per repeated unknown directive: the
    document was validated in full. Flagged here on any count that high."""
    answer = await graph_query(client, "query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }")
    return len(errors_of(answer)) >= 10


async def circular_query_introspection(client: httpx.AsyncClient) -> bool:
    query = (
        "query cop { __schema { types { fields { type { fields { type { fields {"
        " type { fields { type { name } } } } } } } } } } }"
    )
    return bool(data_of(await graph_query(client, query)).get("__schema"))


async def get_based_mutation(client: httpx.AsyncClient) -> bool:
    response = await client.get(
        "/graphql", params={"query": "mutation cop {__typename}"}, headers=HEADERS
    )
    return bool(data_of(answer_of(response)))


async def post_based_csrf(client: httpx.AsyncClient) -> bool:
    response = await client.post(
        "/graphql", data={"query": "query cop { __typename }"}, headers=HEADERS
    )
    return response.status_code < 400 or bool(data_of(answer_of(response)))


async def unhandled_error_detection(client: httpx.AsyncClient) -> bool:
    answer = await graph_query(client, "qwerty cop { abc }")
    errors = errors_of(answer)
    assert errors, answer  # a syntax error, reported as one
    return any(set(error.get("extensions", {})) != {"code"} for error in errors)


async def field_duplication(client: httpx.AsyncClient) -> bool:
    """Off in graphql-cop's default run (its issue 43: clients repeat fields, and a
    server merges them), kept here because graphql-core's validation compares the
    copies pairwise: 500 of them are 125,000 comparisons, refused as too complex."""
    answer = await graph_query(client, "query cop { " + "__typename \n" * 500 + "} ")
    return bool(data_of(answer))


CHECKS: dict[str, Check] = {
    check.__name__: check
    for check in (
        field_suggestions, introspection, detect_graphiql, get_method_support,
        alias_overloading, batch_query, trace_mode, directive_overloading,
        circular_query_introspection, get_based_mutation, post_based_csrf,
        unhandled_error_detection, field_duplication,
    )
}


async def flagged(client: httpx.AsyncClient) -> set[str]:
    return {name for name, check in CHECKS.items() if await check(client)}


async def test_graphql_cop_flags_nothing_on_production_settings(configured: Configured) -> None:
    assert await flagged(configured(introspection=False, graphiql=False)) == set()


async def test_graphql_cop_flags_only_the_documented_development_defaults(
    client: httpx.AsyncClient,
) -> None:
    assert await flagged(client) == DEVELOPMENT_DEFAULTS

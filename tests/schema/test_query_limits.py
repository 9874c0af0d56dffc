"""Abuse limits on the query language (OWASP's GraphQL cheat sheet): depth, aliases,
tokens, cost, introspection, batches and body sizes, over HTTP and the WebSocket."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query, parse
from graphql.language.parser import Parser
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from pictograph.schema import build_schema, limits
from pictograph.schema.query_shape import fragments_of, measure
from pictograph.settings import Settings
from tests.conftest import Configured
from tests.support.graphql import PASSWORD, error_codes, gql, sign_up

LIMITS = Settings()  # the defaults under test

# Followers of followers of followers: depth 11 (fields on the longest path).
DEEP = (
    "{ viewer { followers { edges { node { followers { edges { node {"
    " followers { edges { node { username } } } } } } } } } } }"
)
# 100 followers of each of 100 followers: 1 + 1 + 100 * (3 + 100 * 3) = 30302.
COSTLY = (
    "query($n: Int) { viewer { followers(first: $n) { edges { node {"
    " followers(first: $n) { edges { node { username } } } } } } } }"
)
FEED_PAGE = """query {
  feed(first: 20) {
    edges { cursor node { id caption createdAt author { username displayName }
                          media(size: THUMBNAIL) { url width height expiresAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
PROFILE = """query($u: String!) {
  user(username: $u) {
    id username displayName bio isPrivate followerCount followingCount postCount
    viewerFollowStatus followsViewer
    posts(first: 12) {
      edges { node { id caption createdAt media(size: THUMBNAIL) { url width height } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
FOLLOWERS = """query($u: String!, $after: String) {
  user(username: $u) {
    followers(first: 100, after: $after) {
      edges { cursor node { id username displayName isPrivate viewerFollowStatus followsViewer } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

ENUM_VARIABLE = 'query($s: MediaSize!) { post(id: "x") { media(size: $s) { url } } }'


def too_complex(result: dict[str, Any]) -> list[str]:
    assert result["data"] is None, result
    assert error_codes(result) == ["QUERY_TOO_COMPLEX"], result
    return [error["message"] for error in result["errors"]]


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels aliases once expanded."""
    fragments = [f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on User {{ me: id }}")
    return "query { viewer { ...F0 } }\n" + "\n".join(fragments)


async def test_each_limit_is_query_too_complex_and_names_it(client: httpx.AsyncClient) -> None:
    assert too_complex(await gql(client, DEEP)) == ["query depth 11 exceeds the limit of 10"]

    aliases = "{ " + " ".join(f"v{i}: viewer {{ id }}" for i in range(16)) + " }"
    assert too_complex(await gql(client, aliases)) == [
        "query alias count 16 exceeds the limit of 15"
    ]

    tokens = "{ " + "viewer { id } " * 300 + "}"  # 1,202 tokens
    assert too_complex(await gql(client, tokens)) == [
        "query token count exceeds the limit of 1000"
    ]

    assert too_complex(await gql(client, COSTLY, {"n": 100})) == [
        "query cost 30302 exceeds the limit of 5000"
    ]
    result = await gql(client, DEEP)
    assert result["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX", "limit": "depth", "maximum": 10,
    }


async def test_nothing_runs_past_a_limit(client: httpx.AsyncClient) -> None:
    """Mutations over a limit are refused whole, before any field resolves."""
    sign_ups = " ".join(
        f'u{i}: signUp(input: {{username: "alias{i}", password: "{PASSWORD}"}}) {{ token }}'
        for i in range(16)
    )
    too_complex(await gql(client, "mutation { " + sign_ups + " }"))
    costly = (
        "mutation($input: SignUpInput!) { signUp(input: $input) { user {"
        " followers(first: 100) { edges { node { followers(first: 100) {"
        " edges { node { username } } } } } } } } }"
    )
    input_ = {"username": "costly", "password": PASSWORD}
    too_complex(await gql(client, costly, {"input": input_}))
    deep = (
        "mutation($input: SignUpInput!) { signUp(input: $input) { user { followers {"
        " edges { node { followers { edges { node { followers { edges { node { id } } } } } } }"
        " } } } } }"
    )
    too_complex(await gql(client, deep, {"input": input_}))

    for username in ("alias0", "alias15", "costly"):
        found = await gql(client, "query($u: String!) { user(username: $u) { id } }",
                          {"u": username})
        assert found == {"data": {"user": None}}


async def test_a_frontends_pages_fit_well_under_the_limits(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "ada")
    assert not (await gql(client, FEED_PAGE, token=token)).get("errors")
    assert not (await gql(client, PROFILE, {"u": "ada"}, token=token)).get("errors")
    assert not (await gql(client, FOLLOWERS, {"u": "ada"}, token=token)).get("errors")

    schema = build_schema()._schema
    for query in (FEED_PAGE, PROFILE, FOLLOWERS):
        document = parse(query)
        shape = measure(schema, fragments_of(document.definitions), document.definitions[0])
        assert shape.depth <= LIMITS.max_query_depth - 3, (shape, query)
        assert shape.cost <= LIMITS.max_query_cost // 4, (shape, query)
    # A whole page of 100 posts with author and media fits too.
    document = parse(FEED_PAGE.replace("first: 20", "first: 100"))
    assert measure(schema, {}, document.definitions[0]).cost <= LIMITS.max_query_cost // 2


async def test_cost_counts_first_as_the_resolvers_cap_it_and_reads_variables(
    client: httpx.AsyncClient,
) -> None:
    # The same document: its cost is decided with this request's variables.
    assert not (await gql(client, COSTLY, {"n": 5})).get("errors")
    assert too_complex(await gql(client, COSTLY, {"n": 100}))
    # `first` beyond 100 loads 100, and is counted as 100.
    assert too_complex(await gql(client, COSTLY, {"n": 1_000_000})) == [
        "query cost 30302 exceeds the limit of 5000"
    ]
    # Absent, each `first` is its default of 20: 2 + 20 * (3 + 20 * 3).
    default = COSTLY.replace("(first: $n)", "").replace("($n: Int)", "")
    assert not (await gql(client, default)).get("errors")
    literal = COSTLY.replace("$n)", "1000000)").replace("($n: Int)", "")
    assert too_complex(await gql(client, literal)) == [
        "query cost 30302 exceeds the limit of 5000"
    ]


async def test_fragments_are_measured_once_each(client: httpx.AsyncClient) -> None:
    """Strawberry's own depth and alias limiters walk this 2**22 times."""
    assert too_complex(await gql(client, fragment_bomb(22))) == [
        "query alias count 4194304 exceeds the limit of 15"
    ]
    nested = (
        "query { viewer { ...A } }"
        " fragment A on User { followers { edges { node { ...B } } } }"
        " fragment B on User { followers { edges { node { ...C } } } }"
        " fragment C on User { followers { edges { node { username } } } }"
    )
    assert too_complex(await gql(client, nested)) == ["query depth 11 exceeds the limit of 10"]


async def test_directives_are_counted_before_validation(client: httpx.AsyncClient) -> None:
    """Past the limit, one error: the unknown directives were never validated one by one.
    Directives count wherever they stand: operation, variable, field, spread, fragment."""
    eleven = (
        "query q($v: Boolean = true @aa) @bb { viewer @cc @dd { ...F @ee } }"
        " fragment F on User @ff { id @gg @hh @ii username @jj @kk }"
    )
    assert too_complex(await gql(client, eleven)) == [
        "query directive count 11 exceeds the limit of 10"
    ]
    result = await gql(client, eleven)
    assert result["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX", "limit": "directives", "maximum": 10,
    }
    ten = "{ " + " ".join(f"a{i}: __typename @include(if: true)" for i in range(10)) + " }"
    assert (await gql(client, ten))["data"] == {f"a{i}": "Query" for i in range(10)}


async def test_validation_stops_after_a_few_errors(client: httpx.AsyncClient) -> None:
    """graphql-cop's directive overloading: ten unknown directives, within the limit, are
    not each reported; validation stops at the fifth error and says so."""
    result = await gql(client, "query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }")
    assert result["data"] is None
    messages = [error["message"] for error in result["errors"]]
    assert messages == ["Unknown directive '@aa'."] * 5 + [
        "Too many validation errors, error limit reached. Validation aborted."
    ]
    assert set(error_codes(result)) == {"BAD_USER_INPUT"}


async def test_duplicated_fields_are_merged_within_a_budget(client: httpx.AsyncClient) -> None:
    """graphql-core checks that fields sharing a response name merge by comparing them
    pairwise, so n copies cost n * n: 248 copies of `viewer { id }` (a 3 kB body) were
    1.5 s of CPU. A budget (far above what real pages spend) refuses them before that."""
    for query in (
        "query cop { " + "__typename \n" * 500 + "} ",  # graphql-cop's field duplication
        "{ " + "viewer { id } " * 100 + "}",
    ):
        assert too_complex(await gql(client, query)) == [
            "query field merging exceeds the limit of 10000 steps"
        ]
    # Fields repeated as clients do (each fragment with its id and __typename) still run.
    token = await sign_up(client, "merged")
    colocated = (
        "query { viewer { id __typename ...A ...B ...C } }"
        " fragment A on User { id __typename username }"
        " fragment B on User { id __typename displayName }"
        " fragment C on User { id __typename followers { edges { node { id ...A ...B } } } }"
    )
    result = await gql(client, colocated, token=token)
    assert not result.get("errors") and result["data"]["viewer"]["username"] == "merged"
    twenty = "{ viewer { " + "id " * 20 + "} " + "__typename " * 20 + "}"
    assert not (await gql(client, twenty)).get("errors")


async def test_introspection_works_but_cannot_nest_lists(client: httpx.AsyncClient) -> None:
    full = await gql(client, get_introspection_query(descriptions=True))
    assert not full.get("errors")
    assert full["data"]["__schema"]["queryType"]["name"] == "Query"
    nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    assert too_complex(await gql(client, nested)) == [
        "introspection list nesting exceeds the limit of 2"
    ]


async def test_a_repeated_query_is_parsed_and_validated_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = {"parse": 0, "validate": 0}
    parse_document = Parser.parse_document
    validate = limits.validate

    def counting_parse(self: Parser) -> Any:
        counts["parse"] += 1
        return parse_document(self)

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        counts["validate"] += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(Parser, "parse_document", counting_parse)
    monkeypatch.setattr(limits, "validate", counting_validate)
    # Unique text, so that no earlier test (or backend) has cached it.
    query = (
        f"# {secrets.token_hex(8)}\n"
        "query($n: Int) { viewer { followers(first: $n) { edges { node { username } } } } }"
    )
    for n in (1, 2, 3, 100):
        assert not (await gql(client, query, {"n": n})).get("errors")
    aliases = " ".join(f"v{i}: viewer {{ id }}" for i in range(16))
    over = f"# {secrets.token_hex(8)}\n{{ {aliases} }}"
    for _ in range(3):
        too_complex(await gql(client, over))
    # Each document once by the schema, and once by the response cache's middleware,
    # which keeps what it declares by hash (http/declared.py): 2 documents, 4 parses.
    assert counts == {"parse": 4, "validate": 2}


async def test_batches_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json=[{"query": "{ viewer { id } }"}, {"query": "{ viewer { id } }"}]
    )
    assert response.status_code == 400
    assert response.json() == {"errors": [
        {"message": "Batching is not enabled", "extensions": {"code": "BAD_USER_INPUT"}}
    ]}


async def test_an_oversized_body_is_refused_without_being_read(
    client: httpx.AsyncClient,
) -> None:
    pulled = 0
    chunk = b" " * 65_536

    async def body(chunks: int) -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(chunks):
            pulled += 1
            yield chunk

    # Declared too large: refused before a byte is read.
    response = await client.post(
        "/graphql", content=body(64),
        headers={"content-type": "application/json", "content-length": str(64 * 65_536)},
    )
    assert response.status_code == 413
    assert "1048576 bytes" in response.text
    assert pulled == 0

    # Chunked, no length: counted as it arrives, and cut off just past the limit.
    response = await client.post(
        "/graphql", content=body(64), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert pulled == 1_048_576 // 65_536 + 1

    # A body under the limit, chunked, still reaches GraphQL whole.
    async def small() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer '
        yield b'{ id } }"}'

    response = await client.post(
        "/graphql", content=small(), headers={"content-type": "application/json"}
    )
    assert response.json() == {"data": {"viewer": None}}


@pytest.fixture
def production(configured: Configured) -> httpx.AsyncClient:
    """The app as production would configure it: no introspection, no GraphiQL, and
    (so that the settings are seen to apply) small limits."""
    return configured(
        introspection=False, graphiql=False,
        max_query_depth=4, max_query_aliases=1, max_query_tokens=100,
        max_query_cost=50, max_request_bytes=4096, max_query_directives=2,
    )


async def test_limits_are_settings(production: httpx.AsyncClient) -> None:
    depth5 = "{ viewer { followers { edges { node { username } } } } }"
    assert too_complex(await gql(production, depth5)) == ["query depth 5 exceeds the limit of 4"]
    assert too_complex(await gql(production, "{ a: viewer { id } b: viewer { id } }")) == [
        "query alias count 2 exceeds the limit of 1"
    ]
    many = "{ " + "viewer { id } " * 30 + "}"
    assert too_complex(await gql(production, many)) == [
        "query token count exceeds the limit of 100"
    ]
    # 1 + 1 + first * (edges + cursor): 50 at 24, the limit; 52 at 25.
    followers = "{ viewer { followers(first: 25) { edges { cursor } } } }"
    assert too_complex(await gql(production, followers)) == [
        "query cost 52 exceeds the limit of 50"
    ]
    assert not (await gql(production, followers.replace("25", "24"))).get("errors")
    two = "{ __typename @include(if: true) __typename @skip(if: false) }"
    assert not (await gql(production, two)).get("errors")
    assert too_complex(await gql(production, two.replace("}", "@skip(if: false) }"))) == [
        "query directive count 3 exceeds the limit of 2"
    ]

    fits = '{"query": "{ viewer { id } }", "padding": "' + "x" * 3800 + '"}'
    response = await production.post(
        "/graphql", content=fits, headers={"content-type": "application/json"}
    )
    assert response.json() == {"data": {"viewer": None}}
    response = await production.post(
        "/graphql", content=fits.replace("x" * 3800, "x" * 4200),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_errors_suggest_names_while_introspection_is_on(
    client: httpx.AsyncClient,
) -> None:
    typo = await gql(client, "{ viewer { usernam } }")
    assert typo["errors"][0]["message"].endswith("Did you mean 'username'?")
    enum = await gql(client, ENUM_VARIABLE, {"s": "FUL"})
    assert enum["errors"][0]["message"].endswith("Did you mean the enum value 'FULL'?")


async def test_production_hides_the_schema(production: httpx.AsyncClient) -> None:
    for query in ("{ __schema { queryType { name } } }", '{ __type(name: "User") { name } }'):
        refused = await gql(production, query)
        assert refused["data"] is None and set(error_codes(refused)) == {"BAD_USER_INPUT"}
        assert "introspection has been disabled" in refused["errors"][0]["message"]
    assert await gql(production, "{ __typename }") == {"data": {"__typename": "Query"}}

    message = (await gql(production, "{ viewer { usernam } }"))["errors"][0]["message"]
    assert message == "Cannot query field 'usernam' on type 'User'."
    message = (await gql(production, ENUM_VARIABLE, {"s": "FUL"}))["errors"][0]["message"]
    assert "'FUL'" in message and "Did you mean" not in message and "FULL" not in message

    page = await production.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 404


async def test_subscriptions_over_the_websocket_are_limited_too(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        token = await sign_up(http, "socket")
    url = server.replace("http", "ws", 1) + "/graphql"
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
        await socket.send(json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        ))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        deep = (
            "subscription { feedUpdates { post { author { followers { edges { node {"
            " followers { edges { node { followers { edges { node { username }"
            " } } } } } } } } } } } }"
        )
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": deep}}))
        answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert answer["type"] == "error" and answer["id"] == "1"
        errors = [(error["message"], error["extensions"]["code"]) for error in answer["payload"]]
        assert errors == [("query depth 13 exceeds the limit of 10", "QUERY_TOO_COMPLEX")]

        # A query sent over the socket is measured as one over HTTP, variables included.
        await socket.send(json.dumps({"id": "2", "type": "subscribe", "payload": {
            "query": COSTLY, "variables": {"n": 100},
        }}))
        answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert answer["id"] == "2"
        assert [error["message"] for error in answer["payload"]] == [
            "query cost 30302 exceeds the limit of 5000"
        ]


async def test_a_real_server_answers_413_to_a_chunked_body_and_keeps_serving(
    server: str,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # 2.5 MB, with no Content-Length
            yield b" " * 65_536

    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        response = await http.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert (await gql(http, "{ viewer { id } }")) == {"data": {"viewer": None}}

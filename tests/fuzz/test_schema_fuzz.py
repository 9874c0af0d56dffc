"""schemathesis's GraphQL mode against the live app: every query and mutation, valid and
invalid, with and without a token, on both backends. No answer may be a server error, and
every error must carry one of the contract's codes and nothing of the server's insides.

schemathesis generates the requests (from the schema the app itself introspects) and runs
its own response checks; the requests go through the test's httpx client, because the app
and its connections live on the test's event loop (schemathesis's ASGI client would start
a second loop in a thread, where asyncpg and Redis connections cannot follow).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import get_introspection_query
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes

from pictograph.resources import Resources
from tests.support.feeds import FEED, publish
from tests.support.graphql import PASSWORD, gql, relate_ok, sign_up, user_id
from tests.support.photos import create_upload, jpeg, put_bytes

# ../shared/contract/schema.graphql: the only codes a client may ever see.
CONTRACT_CODES = frozenset({
    "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT",
    "RATE_LIMITED", "QUERY_TOO_COMPLEX", "INTERNAL_SERVER_ERROR",
})
# What leaks when an exception is shown as it is: a traceback, a class name, SQL, a driver.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|\b[A-Z][A-Za-z]*(?:Error|Exception)\b"
    r"|\b(?:SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET)\b|syntax error at or near"
    r"|asyncpg|sqlite|tortoise|psycopg|redis|botocore|aioboto|pictograph\.",
)
# CI runs a fixed set of examples; PICTOGRAPH_FUZZ_EXAMPLES=500 hunts longer, with fresh
# random examples on every run.
HUNT = os.environ.get("PICTOGRAPH_FUZZ_EXAMPLES")
EXAMPLES = {GenerationMode.POSITIVE: int(HUNT or 25), GenerationMode.NEGATIVE: 6}

GRAPH_MUTATIONS = [f"Mutation.{name}" for name in (
    "follow", "unfollow", "approveFollowRequest", "rejectFollowRequest", "removeFollower",
    "block", "unblock")]


@dataclass
class Seeds:
    """Real ids, names and cursors the generator mixes into its own values, so that
    resolvers find rows and do real work instead of answering NOT_FOUND."""

    token: str = ""
    ids: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)


SEEDS = Seeds()


def _seeded(pool: Callable[[], list[Any]]) -> st.SearchStrategy[Any]:
    # The pool is read at draw time: each test fills it with its own backend's rows.
    return st.integers(min_value=0, max_value=1 << 16).map(lambda i: pool()[i % len(pool())])


def _encoded(template: str, value: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return value.map(lambda v: base64.urlsafe_b64encode(
        template.format(v).encode()).decode().rstrip("="))


# Numbers where storage breaks: past a BIGINT either way, negative, empty, not a number.
_NUMBERS = st.sampled_from(["9" * 40, str(1 << 63), str(-(1 << 63) - 1), "-1", "0", "", "x",
                            " 7"]) | st.integers().map(str)
def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy)


# Ids: seeded ones most often; well-formed ones for rows that cannot exist; whatever.
schemathesis.graphql.scalar("ID", _weighted(
    (2, _seeded(lambda: SEEDS.ids).map(nodes.String)),
    (1, _encoded("{0[0]}:{0[1]}", st.tuples(
        st.sampled_from(["User", "Post", "Upload", "Nope", ""]), _NUMBERS)).map(nodes.String)),
    (1, (st.text(max_size=40) | st.integers().map(str)).map(nodes.String)
     | st.integers(-(2**31), 2**31 - 1).map(nodes.Int)),
))
# Strings: seeded ones most often (names, the password, a real cursor, content types);
# forged cursors; text that storage refuses (too long for a column, a NUL); whatever.
schemathesis.graphql.scalar("String", _weighted(
    (2, _seeded(lambda: SEEDS.strings)),
    (1, _encoded("c:{}", _NUMBERS)),
    (1, st.sampled_from(["x" * 31, "y" * 5000, "nul\x00byte", "\x00", " ", "DROP TABLE users"])),
    (1, st.text()),
).map(nodes.String))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Requests that once broke the server, replayed first on every run (Hypothesis's explicit
# examples): numbers past a BIGINT in ids and cursors, and log-in names no column holds.
_HUGE = "9" * 40
REGRESSIONS: dict[str, list[str]] = {
    "Query.node": [f'{{ node(id: "{_b64("Post:" + _HUGE)}") {{ id }} }}'],
    "Query.post": [f'{{ post(id: "{_b64("Post:-" + _HUGE)}") {{ id }} }}'],
    "Query.user": [f'{{ user(username: "author") {{ posts(after: "{_b64("c:" + _HUGE)}") '
                   f'{{ edges {{ cursor }} }} }} }}'],
    "Mutation.follow": [f'mutation {{ follow(userId: "{_b64("User:" + _HUGE)}") {{ status }} }}'],
    "Mutation.deletePost": [f'mutation {{ deletePost(id: "{_b64("Post:" + _HUGE)}") }}'],
    "Mutation.logIn": [
        f'mutation {{ logIn(input: {{username: "{name}", password: "{PASSWORD}"}}) {{ token }} }}'
        for name in ("x" * 31, "nul\\u0000byte")],
}


async def _seed(client: httpx.AsyncClient, resources: Resources) -> Seeds:
    """A private `fuzzer` with a pending request from `fan` and a READY post of its own,
    following a public `author` who has a READY post; and a filled upload not yet posted."""
    token = await sign_up(client, "fuzzer")
    author = await sign_up(client, "author")
    fan = await sign_up(client, "fan")
    ids = {name: await user_id(client, name) for name in ("fuzzer", "author", "fan")}
    await relate_ok(client, "follow", token, ids["author"])
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { id } }", token=token)
    await relate_ok(client, "follow", fan, ids["fuzzer"])
    posts = [await publish(client, resources, author, "by author"),
             await publish(client, resources, token, "by fuzzer")]
    data = jpeg(64, 48)
    ticket = await create_upload(client, token, data)
    assert await put_bytes(client, ticket, data) == 200
    feed = await gql(client, FEED, {"first": 1}, token=token)
    cursor = feed["data"]["feed"]["pageInfo"]["endCursor"]
    assert cursor, feed
    return Seeds(token=token, ids=[*ids.values(), *posts, ticket["uploadId"]],
                 strings=["fuzzer", "author", "fan", PASSWORD, cursor, "image/jpeg", "image/png"])


def _problems(response: httpx.Response) -> list[str]:
    """What the contract forbids in any answer: a 5xx, an uncoded or internal error, or an
    error message that shows the server's insides."""
    if response.status_code >= 500:
        return [f"HTTP {response.status_code}"]
    try:
        body = response.json()
    except ValueError:
        return [] if response.status_code >= 400 else ["a 2xx answer that is not JSON"]
    errors = (body.get("errors") or []) if isinstance(body, dict) else []
    found = []
    for error in errors:
        extensions = error.get("extensions") or {}
        code = extensions.get("code")
        if code not in CONTRACT_CODES:
            found.append(f"code {code!r} is not in the contract: {error}")
        elif code == "INTERNAL_SERVER_ERROR":
            found.append(f"a server error at {error.get('path')}")
        if LEAKS.search(error.get("message", "")) or {"exception", "stacktrace"} & set(extensions):
            found.append(f"unmasked: {error}")
    return found


def _fuzz(schema: Any, send: Callable[[Any], httpx.Response], skip: set[str]
          ) -> tuple[dict[str, str], Counter[str]]:
    """Runs every operation in both generation modes; returns what failed and how many
    answers came without any error, by operation."""
    failures: dict[str, str] = {}
    served: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        for mode, examples in EXAMPLES.items():
            try:
                _fuzz_operation(operation, mode, examples, send, served)
            except (AssertionError, BaseExceptionGroup) as error:
                failures[f"{operation.label} ({mode.value})"] = str(error)
    return failures, served


def _fuzz_operation(operation: Any, mode: GenerationMode, examples: int,
                    send: Callable[[Any], httpx.Response], served: Counter[str]) -> None:
    must_pass = [checks.response_schema_conformance]
    if mode == GenerationMode.NEGATIVE:
        must_pass.append(checks.negative_data_rejection)

    # No shrinking: a failing run stays as short as a passing one, and the report shows
    # the failing request as it was sent.
    @_with_examples([operation.Case(body=query) for query in REGRESSIONS.get(operation.label, [])]
                    if mode == GenerationMode.POSITIVE else [])
    @settings(max_examples=examples, deadline=None, database=None, derandomize=HUNT is None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = send(case)
        problems = _problems(response)
        assert not problems, "\n".join([*problems, case.body])
        case.validate_response(response, checks=must_pass)
        body = response.json()
        if not body.get("errors") and body.get("data"):
            served[operation.label] += 1

    run()


def _with_examples(cases: list[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def add(test: Callable[..., None]) -> Callable[..., None]:
        for case in cases:
            test = example(case=case)(test)
        return test

    return add


def _sender(client: httpx.AsyncClient, token: str | None,
            loop: asyncio.AbstractEventLoop) -> Callable[[Any], httpx.Response]:
    """Sends a case as schemathesis would, on the loop the app lives on."""

    def send(case: Any) -> httpx.Response:
        request = case.as_transport_kwargs(
            headers={"Authorization": f"Bearer {token}"} if token else None)
        call: Coroutine[Any, Any, httpx.Response] = client.post(
            "/graphql", json=request["json"], headers=request["headers"])
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=60)

    return send


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "token"])
async def test_fuzzed_operations_get_no_server_errors(
    client: httpx.AsyncClient, resources: Resources, signed_in: bool
) -> None:
    seeds = await _seed(client, resources)
    SEEDS.ids, SEEDS.strings = seeds.ids, seeds.strings
    introspected = await client.post("/graphql", json={"query": get_introspection_query()})
    schema = schemathesis.graphql.from_dict(introspected.json())
    assert len(list(schema.get_all_operations())) >= 20
    # logOut takes no arguments; with the token it would only sign the rest of the run out.
    skip = {"Mutation.logOut"} if signed_in else set()
    send = _sender(client, seeds.token if signed_in else None, asyncio.get_running_loop())
    failures, served = await asyncio.to_thread(_fuzz, schema, send, skip)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    # The run reached the resolvers' real work, not only their refusals.
    queries = {"Query.viewer", "Query.user", "Query.node", "Query.post"}
    if signed_in:
        queries |= {"Query.feed", "Query.followRequests", "Mutation.updateProfile"}
        assert sum(served[label] for label in GRAPH_MUTATIONS) > 0, served
    assert {label for label in queries if not served[label]} == set(), served


def test_the_error_rules_catch_leaks_and_server_errors() -> None:
    """The check itself can fail: each of these answers breaks the contract."""

    def answer(status: int, *errors: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, json={"data": None, "errors": list(errors)})

    masked = {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    assert _problems(answer(502))
    assert _problems(answer(200, masked))
    assert _problems(answer(200, {"message": "no such post"}))
    assert _problems(answer(200, {"message": "x", "extensions": {"code": "TEAPOT"}}))
    for leak in ('invalid input for query argument $1: 99 (value out of int64 range)'
                 ' asyncpg.exceptions.DataError', 'Traceback (most recent call last)',
                 'SELECT "id" FROM "post" WHERE "id"=$1', "KeyError: 'v'"):
        assert _problems(answer(200, {"message": leak, "extensions": {"code": "NOT_FOUND"}}))
    assert not _problems(answer(200, {"message": "no such post",
                                      "extensions": {"code": "NOT_FOUND"}}))

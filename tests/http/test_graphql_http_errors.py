"""How /graphql answers HTTP requests it will not run: a 4xx with a GraphQL-style JSON
body, the connection kept usable, and nothing logged at ERROR (a client's mistake is
not an incident, and must not let anyone flood the log)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.graphql import gql, sign_up
from tests.support.http1 import Sent, on_one_connection

JSON = {"content-type": "application/json"}
TYPENAME = json.dumps({"query": "{ __typename }"}).encode()


def refused(response: httpx.Response, status: int, code: str = "BAD_USER_INPUT") -> str:
    """The message of a refusal, after checking that it has the shape of one."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert list(body) == ["errors"], body
    [error] = body["errors"]
    assert error["extensions"] == {"code": code}, error
    assert error["message"], error
    return error["message"]


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [], [record.getMessage() for record in errors]


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_json_body_that_is_not_an_object_is_a_400(client: httpx.AsyncClient) -> None:
    for body in (b"null", b'"x"', b"5", b"true", b"1.5e3"):
        response = await client.post("/graphql", content=body, headers=JSON)
        assert "JSON object" in refused(response, 400), body


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_subscription_over_post_is_refused_as_the_clients_mistake(
    client: httpx.AsyncClient,
) -> None:
    token = await sign_up(client, "poster")
    for _ in range(3):
        response = await client.post(
            "/graphql", json={"query": "subscription { feedUpdates { kind } }"},
            headers={"authorization": f"Bearer {token}"},
        )
        message = refused(response, 400)
        assert "WebSocket" in message and "graphql-transport-ws" in message, message
    # Queries and mutations still run over POST.
    assert await gql(client, "{ __typename }") == {"data": {"__typename": "Query"}}


@pytest.mark.usefixtures("no_errors_logged")
async def test_every_refusal_is_a_graphql_error(client: httpx.AsyncClient) -> None:
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("malformed JSON", {"content": b"{nope", "headers": JSON}, 400),
        ("not UTF-8", {"content": b"\xff\xfe", "headers": JSON}, 400),
        ("no query", {"json": {"variables": {}}}, 400),
        ("query not a string", {"json": {"query": 5}}, 400),
        ("variables not an object", {"json": {"query": "{ __typename }", "variables": [1]}}, 400),
        ("operationName not a string",
         {"json": {"query": "query a { __typename }", "operationName": {"a": 1}}}, 400),
        ("unknown operationName", {"json": {"query": "query a { __typename }",
                                            "operationName": "b"}}, 400),
        ("a batch", {"json": [{"query": "{ __typename }"}, {"query": "{ __typename }"}]}, 400),
        ("an empty batch", {"json": []}, 400),
        ("form-urlencoded", {"data": {"query": "{ __typename }"}}, 415),
        ("multipart", {"files": {"query": (None, "{ __typename }")}}, 415),
        ("text/plain", {"content": TYPENAME, "headers": {"content-type": "text/plain"}}, 415),
        ("no content type", {"content": TYPENAME}, 415),
        ("a JSON look-alike", {"content": TYPENAME,
                               "headers": {"content-type": "application/jsonp"}}, 415),
        ("JSON with a charset", {"content": b"null",
                                 "headers": {"content-type": "application/json; charset=utf-8"}},
         400),
        ("Content-Length not a number",
         {"content": TYPENAME, "headers": {**JSON, "content-length": "12abc"}}, 400),
        ("too large", {"content": b" " * 1_048_577, "headers": JSON}, 413),
    ]
    for name, request, status in cases:
        try:
            refused(await client.post("/graphql", **request), status)
        except AssertionError as failure:
            raise AssertionError(name) from failure
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        response = await client.request(method, "/graphql", json={"query": "{ __typename }"})
        refused(response, 405)
        assert response.headers["allow"] == "GET, POST"
    # GraphQL's own errors (parse, validation) stay 200 with data: null, as before.
    response = await client.post("/graphql", json={"query": "{ nope"})
    assert response.status_code == 200 and response.json()["data"] is None


@pytest.mark.usefixtures("no_errors_logged")
async def test_get_runs_no_operation(client: httpx.AsyncClient) -> None:
    """Queries over GET are the CSRF class of request: refused, whatever they hold."""
    for query in ("{ __typename }", "mutation { logOut }", "subscription { feedUpdates { kind } }"):
        for accept in ("application/json", "text/html", "*/*"):
            response = await client.get(
                "/graphql", params={"query": query}, headers={"accept": accept}
            )
            assert "POST" in refused(response, 400), (query, accept)
    refused(await client.get("/graphql", headers={"accept": "application/json"}), 400)
    # GraphiQL's page is still served on GET (the default settings turn it on).
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_real_server_keeps_the_connection_after_each_refusal(server: str) -> None:
    """uvicorn closes a connection after an unhandled exception; a refusal must not be one."""
    bad: list[Sent] = [
        Sent("POST", "/graphql", [*JSON.items()], body)
        for body in (b"null", b'"x"', b"5", b"true", b"{nope", b"[]", b"{}")
    ]
    bad += [
        Sent("POST", "/graphql", [*JSON.items()],
             json.dumps({"query": "subscription { feedUpdates { kind } }"}).encode()),
        Sent("POST", "/graphql", [("content-type", "application/x-www-form-urlencoded")],
             b"query=%7B__typename%7D"),
        Sent("GET", "/graphql?query=%7B__typename%7D", [("accept", "application/json")]),
    ]
    good = Sent("POST", "/graphql", [*JSON.items()], TYPENAME)
    requests = [request for refusal in bad for request in (refusal, good)]
    answers = await on_one_connection(server.removeprefix("http://"), requests)
    for refusal, answer in zip(requests[::2], answers[::2], strict=True):
        assert 400 <= answer.status < 500, (refusal, answer)
        assert answer.headers["content-type"] == "application/json", (refusal, answer)
        assert "connection" not in answer.headers, (refusal, answer)
        assert json.loads(answer.body)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for answer in answers[1::2]:
        assert json.loads(answer.body) == {"data": {"__typename": "Query"}}

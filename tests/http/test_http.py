from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.app import create_app
from pictograph.context import Context
from pictograph.resolvers import accounts, live
from pictograph.resources import Resources
from pictograph.schema import build_schema
from pictograph.settings import Settings
from tests.conftest import FAST_HASHING
from tests.support.graphql import error_codes, gql, sign_up


async def test_healthz_and_readyz_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}


async def test_readyz_is_503_when_redis_does_not_answer(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", run_workers=False, **FAST_HASHING
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
            assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"


async def test_malformed_body_is_400_not_500(client: httpx.AsyncClient) -> None:
    for body in (b"{not json", b"[1, 2", b"\xff\xfe"):
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
    response = await client.post("/graphql", json={"variables": {}})
    assert response.status_code == 400


async def test_invalid_queries_are_bad_user_input(client: httpx.AsyncClient) -> None:
    assert error_codes(await gql(client, "{ viewer { nope } }")) == ["BAD_USER_INPUT"]
    assert error_codes(await gql(client, "{ viewer {")) == ["BAD_USER_INPUT"]
    missing_variable = "query($u: String!) { user(username: $u) { id } }"
    assert error_codes(await gql(client, missing_variable)) == ["BAD_USER_INPUT"]


async def test_internal_errors_are_masked_and_logged_with_the_request_id(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError('relation "users" does not exist: SELECT password_hash FROM users')

    monkeypatch.setattr(accounts, "user_by_username", broken)
    caplog.set_level(logging.ERROR, logger="pictograph.errors")
    response = await client.post(
        "/graphql",
        json={"query": '{ user(username: "someone") { id } }'},
        headers={"x-request-id": "req-12345"},
    )
    body = response.json()
    assert response.headers["x-request-id"] == "req-12345"
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "SELECT" not in response.text and "password_hash" not in response.text
    assert "Traceback" not in response.text
    assert "req-12345" in caplog.text and "RuntimeError" in caplog.text


async def test_expected_errors_are_not_logged_as_incidents(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    await gql(client, "mutation { logOut }")
    assert caplog.records == []


async def test_graphiql_is_served_on_get(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_app_factory_opens_nothing_at_import_or_construction(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "never", run_workers=False))
    assert isinstance(app, Starlette)
    assert not (tmp_path / "never").exists()


async def test_subscription_errors_are_masked_too(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscription's results skip the end of on_operation; each is masked on its way."""
    token = await sign_up(client, "listener")

    async def broken(*_: object) -> list[str]:
        raise RuntimeError("Error 111 connecting to redis://:hunter2@10.0.0.5:6379")

    monkeypatch.setattr(live, "_celebrity_channels", broken)
    caplog.set_level(logging.ERROR, logger="pictograph.errors")
    context = Context(resources, None, token, "req-sub-42")
    stream = await build_schema().subscribe("subscription { feedUpdates { kind } }",
                                            context_value=context)
    sent = await as_sent(stream)
    assert [error_codes(result) for result in sent] == [["INTERNAL_SERVER_ERROR"]]
    assert "hunter2" not in str(sent)
    assert "req-sub-42" in caplog.text and "hunter2" in caplog.text


async def test_subscription_expected_errors_keep_their_code(resources: Resources) -> None:
    context = Context(resources, None, None, "req-sub-43")
    stream = await build_schema().subscribe("subscription { feedUpdates { kind } }",
                                            context_value=context)
    assert [error_codes(result) for result in await as_sent(stream)] == [["UNAUTHENTICATED"]]


async def as_sent(stream: Any) -> list[dict[str, Any]]:
    """Each result as a transport would send it: formatted the moment it is yielded."""
    return [{"errors": [error.formatted for error in result.errors or []]}
            async for result in stream]

"""Live feed updates through real server processes and a real graphql-transport-ws
client (gql), on the embedded default and across processes on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client
from gql import gql as document
from gql.transport.exceptions import TransportError
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from pictograph.http.sockets import TOKEN_ENDED
from tests.conftest import PROCESS_REDIS_URL, open_test_redis
from tests.support.graphql import PASSWORD
from tests.support.photos import CREATE_POST, CREATE_UPLOAD, jpeg
from tests.support.processes import (
    on_services,
    output,
    process_env,
    serve,
    serve_process,
    worker,
)
from tests.support.sockets import kill_pubsub_connections, open_socket

FEED_UPDATES = document(
    "subscription { feedUpdates { kind postId post { caption author { username }"
    " media(size: THUMBNAIL) { url } } } }"
)
LIVE_REDIS = PROCESS_REDIS_URL


class Api:
    """A frontend's view of one server process."""

    def __init__(self, base: str) -> None:
        self.base = base

    async def gql(self, query: str, variables: dict | None = None,
                  token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            response = await client.post("/graphql", json={"query": query,
                                                           "variables": variables or {}},
                                         headers=headers)
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]

    async def sign_up(self, username: str) -> str:
        data = await self.gql(
            "mutation($u: String!, $p: String!) { signUp(input: {username: $u, password: $p})"
            " { token } }", {"u": username, "p": PASSWORD})
        return data["signUp"]["token"]

    async def user_id(self, username: str) -> str:
        data = await self.gql("query($u: String!) { user(username: $u) { id } }", {"u": username})
        return data["user"]["id"]

    async def relate(self, mutation: str, token: str, user_id: str) -> None:
        await self.gql(f"mutation($id: ID!) {{ {mutation}(userId: $id) {{ status }} }}",
                       {"id": user_id}, token)

    async def post(self, token: str, caption: str) -> str:
        data = jpeg(80, 60)
        ticket = (await self.gql(CREATE_UPLOAD, {"type": "image/jpeg", "size": len(data)},
                                 token))["createUpload"]
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.request(
                ticket["method"], ticket["url"], content=data,
                headers={h["name"]: h["value"] for h in ticket["headers"]})
            assert response.status_code == 200, response.text
        created = await self.gql(CREATE_POST, {"upload": ticket["uploadId"],
                                               "caption": caption}, token)
        return created["createPost"]["id"]


@contextlib.asynccontextmanager
async def subscribed(base: str, token: str | None) -> AsyncIterator[asyncio.Queue]:
    """Subscribes to feedUpdates; events (or the exception that ended it) go to a queue."""
    events: asyncio.Queue = asyncio.Queue()
    url = base.replace("http://", "ws://") + "/graphql"
    transport = WebsocketsTransport(
        url=url,
        init_payload={"authorization": f"Bearer {token}"} if token else {},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    ready = asyncio.Event()

    async def run() -> None:
        try:
            async with Client(transport=transport) as session:
                ready.set()
                async for result in session.subscribe(FEED_UPDATES):
                    await events.put(result["feedUpdates"])
        except Exception as error:
            ready.set()
            await events.put(error)

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.3)  # the subscribe message reaches the server
    try:
        yield events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def next_event(events: asyncio.Queue, wait: float = 10) -> Any:
    return await asyncio.wait_for(events.get(), wait)


async def next_update(events: asyncio.Queue, wait: float = 10) -> dict[str, Any]:
    event = await next_event(events, wait)
    if isinstance(event, Exception):
        raise AssertionError(f"the subscription ended: {event!r}")
    return event


async def assert_quiet(events: asyncio.Queue, seconds: float = 1.5) -> None:
    with pytest.raises(TimeoutError):
        event = await asyncio.wait_for(events.get(), seconds)
        pytest.fail(f"unexpected event {event}")


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Api]:
    with serve(process_env(tmp_path / "data")) as base:
        yield Api(base)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with on_services(tmp_path / "data", "pictograph_live") as env:
        yield env


async def test_embedded_default_delivers_posts_and_stops_on_unfollow(embedded: Api) -> None:
    fan = await embedded.sign_up("fan")
    author = await embedded.sign_up("author")
    await embedded.relate("follow", fan, await embedded.user_id("author"))
    async with subscribed(embedded.base, fan) as events:
        post_id = await embedded.post(author, "live one")
        event = await next_update(events)
        assert event["kind"] == "POST_ADDED" and event["postId"] == post_id
        assert event["post"]["caption"] == "live one"
        assert event["post"]["author"]["username"] == "author"
        assert event["post"]["media"]["url"].startswith(embedded.base + "/media/")
        await embedded.relate("unfollow", fan, await embedded.user_id("author"))
        removed = await next_update(events)
        assert removed == {"kind": "POST_REMOVED", "postId": post_id, "post": None}
        await embedded.post(author, "not for you")
        await assert_quiet(events)


async def test_across_processes_on_postgresql_and_redis(services: dict[str, str]) -> None:
    with serve(services, workers=False) as first, serve(services, workers=False) as second, \
            worker(services):
        one, two = Api(first), Api(second)
        fan = await one.sign_up("fan")
        author = await two.sign_up("author")
        await one.relate("follow", fan, await one.user_id("author"))
        async with subscribed(first, fan) as events:
            post_id = await two.post(author, "from the other process")
            event = await next_update(events)
            assert event["kind"] == "POST_ADDED" and event["postId"] == post_id
            assert event["post"]["media"]["url"]
            await two.relate("unfollow", fan, await two.user_id("author"))
            assert (await next_update(events))["kind"] == "POST_REMOVED"
            await two.post(author, "after the unfollow")
            await assert_quiet(events, 3)


async def test_a_redis_reconnect_keeps_the_socket(services: dict[str, str]) -> None:
    with serve(services) as base:
        api = Api(base)
        fan = await api.sign_up("steadfast")
        author = await api.sign_up("poster")
        await api.relate("follow", fan, await api.user_id("poster"))
        async with subscribed(base, fan) as events:
            redis = open_test_redis(LIVE_REDIS)  # a cluster's client on a cluster run
            try:
                # Every pub/sub connection on the server drops, as in a Redis restart.
                assert await kill_pubsub_connections(redis) >= 1
            finally:
                await redis.aclose()
            await asyncio.sleep(1.5)  # the hub notices and subscribes again
            post_id = await api.post(author, "after the blip")
            event = await next_update(events)
            assert event["kind"] == "POST_ADDED" and event["postId"] == post_id


async def test_sockets_without_a_good_token_are_refused(embedded: Api) -> None:
    for token in (None, "not-a-token"):
        async with subscribed(embedded.base, token) as events:
            error = await next_event(events)
            assert isinstance(error, TransportError | ConnectionClosed), error


async def test_log_out_on_one_process_closes_sockets_on_another(
    services: dict[str, str],
) -> None:
    with serve(services, workers=False) as first, serve(services, workers=False) as second:
        token = await Api(first).sign_up("leaver")
        async with open_socket(first, token) as socket:
            assert (await socket.execute("{ viewer { username } }"))["data"] == {
                "viewer": {"username": "leaver"}}
            await Api(second).gql("mutation { logOut }", token=token)
            closed = await asyncio.wait_for(socket.closed, 5)
            assert closed.code == TOKEN_ENDED


async def test_sockets_per_user_are_limited(embedded: Api) -> None:
    from pictograph.http.sockets import MAX_SOCKETS_PER_USER

    fan = await embedded.sign_up("greedy")
    async with contextlib.AsyncExitStack() as stack:
        queues = [await stack.enter_async_context(subscribed(embedded.base, fan))
                  for _ in range(MAX_SOCKETS_PER_USER)]
        assert all(queue.empty() for queue in queues)
        async with subscribed(embedded.base, fan) as extra:
            assert isinstance(await next_event(extra), TransportError | ConnectionClosed)


async def test_sigterm_closes_open_sockets_with_service_restart(tmp_path: Path) -> None:
    """A deploy restarts the server: clients get 1012 (service restart) and reconnect."""
    env = process_env(tmp_path / "data", PICTOGRAPH_LOG_LEVEL="INFO")
    with serve_process(env) as (base, process):
        token = await Api(base).sign_up("listener")
        url = base.replace("http://", "ws://") + "/graphql"
        async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"authorization": f"Bearer {token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription { feedUpdates { kind } }"}}))
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        # uvicorn re-raises the signal once it has shut down in order.
        assert await asyncio.to_thread(process.wait, 15) == -signal.SIGTERM
        assert "Application shutdown complete" in output(process)

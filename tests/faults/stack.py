"""What the fault tests share: a frontend's view of a server process that tolerates
errors, the database and Redis as a test inspects them, and waiting for a state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from redis.asyncio import Redis

from pictograph import events
from pictograph.cache import keys
from pictograph.schema.node import decode_global_id
from tests.support.graphql import PASSWORD
from tests.support.photos import CREATE_POST, CREATE_UPLOAD, jpeg
from tests.support.proxy import TcpProxy

CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT",
         "RATE_LIMITED", "QUERY_TOO_COMPLEX", "INTERNAL_SERVER_ERROR"}
# What must never reach a client: a traceback, or the name of what failed inside.
LEAKS = ("Traceback", 'File "', "asyncpg", "tortoise", "redis", "botocore", "Error(")
UNAVAILABLE = "temporarily unavailable"
TEST_CLIENT = "pictograph-fault-tests"  # the name of the tests' own Redis connections
MEDIA_STREAM, MEDIA_GROUP = keys.event_stream(events.MEDIA), "media-workers"
POSTS_STREAM, FOLLOWS_STREAM, FANOUT_GROUP = (
    keys.event_stream(events.POSTS), keys.event_stream(events.FOLLOWS), "fanout")


@dataclass
class Stack:
    """A test's own PostgreSQL database and Redis database, and the environment that
    points server and worker processes at them (local disk in data_dir for photos)."""

    env: dict[str, str]
    database_url: str
    db: asyncpg.Connection
    redis: Redis
    data_dir: Path

    @staticmethod
    def pk(global_id: str) -> int:
        decoded = decode_global_id(global_id)
        assert decoded is not None, global_id
        return decoded[1]

    @asynccontextmanager
    async def holding(self, statement: str, *args: Any) -> AsyncIterator[None]:
        """Runs `statement` (a LOCK, a SELECT ... FOR UPDATE) in a transaction of its own
        connection and holds what it locked until the block ends. Not `db`'s: a
        transaction sees pg_stat_activity as it was when first read, so `db` must not
        be in one while it watches the workers."""
        connection = await asyncpg.connect(self.database_url)
        try:
            async with connection.transaction():
                await connection.execute(statement, *args)
                yield
        finally:
            await connection.close()

    async def waiting_on_locks(self) -> int:
        """Backends of this database blocked on a lock (a worker held mid-job)."""
        return await self.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'")

    async def pending(self, stream: str, group: str) -> int:
        try:
            return (await self.redis.xpending(stream, group))["pending"]
        except Exception:  # no stream or group yet
            return 0

    async def drained(self, stream: str, group: str) -> bool:
        """Every message of the stream read and acknowledged by the group."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except Exception:
            return True  # nothing was ever sent
        found = [g for g in groups if g["name"] == group]
        return bool(found) and found[0]["pending"] == 0 and found[0]["lag"] == 0

    def stored_objects(self) -> set[str]:
        root = self.data_dir / "objects"
        return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


class Api:
    """A frontend talking to one server process; errors are results, not failures."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, query: str, variables: dict[str, Any] | None = None,
                   token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post("/graphql", headers=headers,
                                          json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_clean(body)
        return body

    async def ok(self, query: str, variables: dict[str, Any] | None = None,
                 token: str | None = None) -> dict[str, Any]:
        body = await self.call(query, variables, token)
        assert not body.get("errors"), body
        return body["data"]

    async def sign_up(self, username: str) -> str:
        data = await self.ok(
            "mutation($u: String!, $p: String!) { signUp(input: {username: $u, password: $p})"
            " { token } }", {"u": username, "p": PASSWORD})
        return data["signUp"]["token"]

    async def user_id(self, username: str) -> str:
        data = await self.ok("query($u: String!) { user(username: $u) { id } }", {"u": username})
        return data["user"]["id"]

    async def relate(self, mutation: str, token: str, user_id: str) -> dict[str, Any]:
        return await self.call(
            f"mutation($id: ID!) {{ {mutation}(userId: $id) {{ status }} }}", {"id": user_id},
            token)

    async def upload(self, token: str, data: bytes) -> str:
        """A ticket with the bytes sent; its upload id."""
        ticket = (await self.ok(CREATE_UPLOAD, {"type": "image/jpeg", "size": len(data)},
                                token))["createUpload"]
        async with httpx.AsyncClient(timeout=20) as outside:
            response = await outside.request(
                ticket["method"], ticket["url"], content=data,
                headers={h["name"]: h["value"] for h in ticket["headers"]})
        assert response.status_code == 200, response.text
        return ticket["uploadId"]

    async def post(self, token: str, caption: str, data: bytes | None = None) -> str:
        upload_id = await self.upload(token, data if data is not None else jpeg(80, 60))
        created = await self.ok(CREATE_POST, {"upload": upload_id, "caption": caption}, token)
        return created["createPost"]["id"]

    async def feed(self, token: str) -> list[str]:
        data = await self.ok("{ feed(first: 100) { edges { node { id } } } }", token=token)
        return [edge["node"]["id"] for edge in data["feed"]["edges"]]


def through(proxy: TcpProxy, database_url: str) -> str:
    """`database_url` by way of `proxy`."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{proxy.address}"))


@asynccontextmanager
async def api_for(base: str) -> AsyncIterator[Api]:
    # The timeout turns a hang into a failure; it is far above any answer's time.
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield Api(client)


def assert_clean(body: dict[str, Any]) -> None:
    """Every error has a contract code and says nothing of the code behind it."""
    for error in body.get("errors") or []:
        assert (error.get("extensions") or {}).get("code") in CODES, error
        text = json.dumps(error)
        assert not any(leak in text for leak in LEAKS), error


async def wait_until(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = 30) -> None:
    """Polls until `check` holds; `within` only turns a state that never comes into a
    failure that names it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)

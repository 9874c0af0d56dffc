"""The server bench/load.py drives: Pictograph's own app, plus bench-only routes.

    uvicorn bench.limit_app:create --factory

The two yardsticks of issue 15 answer a POST with the bytes Pictograph answered to the
same body and token (bench/load.py stores them with `store_response`). Each does what a
cached hit must do at the least, and no more: read the bearer token and the body, find
the bytes, send them. They are bare Starlette routes in front of the app, so none of
Pictograph's middleware runs for them.
- POST /bench/limit: the bytes from process memory. Nothing can be faster on this server.
  (A process copies them from Redis the first time it is asked: load.py asks once first.)
- POST /bench/ceiling: the bytes from Redis with exactly one HGET, on a key with the
  token as its hash tag. No design that asks Redis once per request can beat it.
- POST /bench/counting {"on": true|false} starts or stops counting SQL statements and
  Redis round trips; GET /bench/counting reads the counts.
None of this is part of the product: `pictograph serve` never mounts it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.asyncio.client import Pipeline, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pictograph.app import create_app
from pictograph.cache import raw
from pictograph.context import bearer_token
from pictograph.settings import load_settings


def responses_key(token: str) -> str:
    """Where the yardsticks find the responses of one token, by request body."""
    return f"bench:{{{token}}}:responses"


async def store_response(redis: Redis, token: str, body: bytes, response: bytes) -> None:
    await redis.hset(responses_key(token), body, response)  # type: ignore[misc]


class _Counts(logging.Handler):
    """SQL from Tortoise's query log; Redis round trips by wrapping redis-py's two exits
    and the commands packed by hand (cache/raw.call)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql = 0
        self.redis_round_trips = 0
        self.redis_commands = 0
        self._originals: tuple[Any, Any, Any] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(("Created connection", "Closed connection")):
            self.sql += 1

    def start(self) -> None:
        if self._originals is not None:
            return
        self.sql = self.redis_round_trips = self.redis_commands = 0
        logger = logging.getLogger("tortoise.db_client")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        execute_command, execute, call = Redis.execute_command, Pipeline.execute, raw.call
        self._originals = (execute_command, execute, call)
        counts = self

        async def counted_command(client: Redis, *args: Any, **options: Any) -> Any:
            if not isinstance(client, Pipeline):
                counts.redis_round_trips += 1
                counts.redis_commands += 1
            return await execute_command(client, *args, **options)

        async def counted_pipeline(pipe: Pipeline, raise_on_error: bool = True) -> Any:
            if pipe.command_stack:
                counts.redis_round_trips += 1
                counts.redis_commands += len(pipe.command_stack)
            return await execute(pipe, raise_on_error)

        async def counted_call(client: Redis, packed: bytes) -> Any:  # packed by hand
            counts.redis_round_trips += 1
            counts.redis_commands += 1
            return await call(client, packed)

        Redis.execute_command = counted_command  # type: ignore[method-assign]
        Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
        raw.call = counted_call

    def stop(self) -> None:
        if self._originals is None:
            return
        Redis.execute_command, Pipeline.execute, raw.call = (  # type: ignore[method-assign]
            self._originals)
        self._originals = None
        logger = logging.getLogger("tortoise.db_client")
        logger.removeHandler(self)
        logger.setLevel(logging.WARNING)


class _Yardsticks:
    """The two routes and what they read from."""

    def __init__(self) -> None:
        self.redis: Redis | None = None  # bytes in, bytes out: no decoding
        self.memory: dict[tuple[str, bytes], bytes] = {}

    async def limit(self, request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return Response(status_code=401)
        body = await request.body()
        response = self.memory.get((token, body))
        if response is None:
            assert self.redis is not None
            response = await self.redis.hget(responses_key(token), body)  # type: ignore[misc]
            if response is None:
                return Response(status_code=404)
            self.memory[token, body] = response
        return Response(response, media_type="application/json")

    async def ceiling(self, request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return Response(status_code=401)
        assert self.redis is not None
        response = await self.redis.hget(responses_key(token), await request.body())  # type: ignore[misc]
        if response is None:
            return Response(status_code=404)
        return Response(response, media_type="application/json")


def create() -> ASGIApp:
    settings = load_settings()
    app = create_app(settings)
    counts = _Counts()
    yardsticks = _Yardsticks()

    async def counting(request: Request) -> Response:
        if request.method == "POST":
            (counts.start if orjson.loads(await request.body())["on"] else counts.stop)()
        return JSONResponse({"sql": counts.sql, "redis_round_trips": counts.redis_round_trips,
                             "redis_commands": counts.redis_commands})

    bench = Starlette(routes=[
        Route("/bench/limit", yardsticks.limit, methods=["POST"]),
        Route("/bench/ceiling", yardsticks.ceiling, methods=["POST"]),
        Route("/bench/counting", counting, methods=["GET", "POST"]),
    ])
    app_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: Starlette) -> AsyncIterator[None]:
        async with app_lifespan(instance):
            assert settings.redis_url is not None, "the yardsticks need a real Redis"
            yardsticks.redis = Redis.from_url(settings.redis_url)
            try:
                yield
            finally:
                await yardsticks.redis.aclose()

    app.router.lifespan_context = lifespan

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        # Not a Mount: the app's own requests pay for nothing in front of them.
        if scope["type"] == "http" and scope["path"].startswith("/bench/"):
            await bench(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch

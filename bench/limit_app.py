"""The server bench/load.py drives: Pictograph's own app, plus two bench-only routes.

    uvicorn bench.limit_app:create --factory

- POST /bench/limit answers a viewer's feed page straight from Redis, with no GraphQL:
  the token to viewer lookup Pictograph does, then one GET of the JSON the real feed
  query returned for that viewer. It is the limit the feed query is compared with.
- POST /bench/counting {"on": true|false} starts or stops counting SQL statements and
  Redis round trips; GET /bench/counting reads the counts.
None of this is part of the product: `pictograph serve` never mounts it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from redis.asyncio.client import Pipeline, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pictograph.accounts.sessions import resolve_token
from pictograph.app import create_app
from pictograph.context import bearer_token


def limit_key(viewer_id: int) -> str:
    return f"bench:{{{viewer_id}}}:feed"


class _Counts(logging.Handler):
    """SQL from Tortoise's query log; Redis round trips by wrapping redis-py's two exits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql = 0
        self.redis_round_trips = 0
        self.redis_commands = 0
        self._originals: tuple[Any, Any] | None = None

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
        execute_command, execute = Redis.execute_command, Pipeline.execute
        self._originals = (execute_command, execute)
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

        Redis.execute_command = counted_command  # type: ignore[method-assign]
        Pipeline.execute = counted_pipeline  # type: ignore[method-assign]

    def stop(self) -> None:
        if self._originals is None:
            return
        Redis.execute_command, Pipeline.execute = self._originals  # type: ignore[method-assign]
        self._originals = None
        logger = logging.getLogger("tortoise.db_client")
        logger.removeHandler(self)
        logger.setLevel(logging.WARNING)


def create() -> Starlette:
    app = create_app()
    counts = _Counts()

    async def limit(request: Request) -> Response:
        redis = request.app.state.resources.redis
        token = bearer_token(request.headers.get("authorization"))
        viewer_id = await resolve_token(redis, token) if token else None
        if viewer_id is None:
            return Response(status_code=401)
        body = await redis.get(limit_key(viewer_id))
        if body is None:
            return Response(status_code=404)
        return Response(body, media_type="application/json")

    async def counting(request: Request) -> Response:
        if request.method == "POST":
            (counts.start if orjson.loads(await request.body())["on"] else counts.stop)()
        return JSONResponse({"sql": counts.sql, "redis_round_trips": counts.redis_round_trips,
                             "redis_commands": counts.redis_commands})

    app.router.routes[:0] = [
        Route("/bench/limit", limit, methods=["POST"]),
        Route("/bench/counting", counting, methods=["GET", "POST"]),
    ]
    return app

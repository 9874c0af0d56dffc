"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    resources = request.app.state.resources
    checks = {
        "database": lambda: resources.database.db().execute_query("SELECT 1"),
        "redis": resources.redis.ping,
        "storage": resources.storage.ping,
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as error:
            log.warning("readiness: %s failed: %s", name, type(error).__name__)
            results[name] = "unavailable"
    ready = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": results},
        status_code=200 if ready else 503,
    )

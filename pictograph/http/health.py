"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from pictograph.cache.trust import check_policy

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    resources = request.app.state.resources
    checks = {
        "database": lambda: resources.database.db().execute_query("SELECT 1"),
        # Up, and not evicting (cache/trust.py): connected, an evicting Redis is not ready.
        "redis": lambda: check_policy(resources.redis),
        "storage": resources.storage.ping,
    }

    async def probe(name: str) -> str:
        try:
            await asyncio.wait_for(checks[name](), CHECK_TIMEOUT)
        except Exception as error:
            log.warning("readiness: %s failed: %s", name, type(error).__name__)
            return "unavailable"
        return "ok"

    # At once, so the answer comes within one CHECK_TIMEOUT however many are down.
    answers = await asyncio.gather(*(probe(name) for name in checks))
    results = dict(zip(checks, answers, strict=True))
    ready = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": results},
        status_code=200 if ready else 503,
    )

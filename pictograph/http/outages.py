"""Plain HTTP routes during an outage: a 503 with Retry-After, as /readyz answers and
as the GraphQL API says "temporarily unavailable", and one warning line naming the
service rather than a traceback at ERROR for every request."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pictograph.errors import UNAVAILABLE_MESSAGE
from pictograph.outages import unavailable_service

log = logging.getLogger("pictograph.errors")  # where the GraphQL path says the same

# Long enough not to hammer a service that is coming back, short enough that a photo
# shows up soon after it is back (readiness checks give up after 2 s).
RETRY_AFTER_SECONDS = 5

Endpoint = Callable[[Request], Awaitable[Response]]


def answers_outages(*, json: bool) -> Callable[[Endpoint], Endpoint]:
    """Wraps an endpoint so a database, Redis or storage outage answers 503. `json`:
    the body as {"error": message}, like the endpoint's other refusals."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Exception as error:
                service = unavailable_service(error)
                if service is None:
                    raise
                log.warning("request %s: %s unavailable (%s)",
                            request.state.request_id, service, type(error).__name__)
                headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
                if json:
                    return JSONResponse({"error": UNAVAILABLE_MESSAGE}, status_code=503,
                                        headers=headers)
                return PlainTextResponse(UNAVAILABLE_MESSAGE, status_code=503, headers=headers)

        return guarded

    return wrap

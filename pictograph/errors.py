"""Errors a client may see, each with the contract's extensions.code."""

from __future__ import annotations

from typing import Any

UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; try again in a moment."


class PictographError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {"code": self.code, **extensions}


class Unauthenticated(PictographError):
    code = "UNAUTHENTICATED"


class Forbidden(PictographError):
    code = "FORBIDDEN"


class NotFound(PictographError):
    code = "NOT_FOUND"


class BadUserInput(PictographError):
    code = "BAD_USER_INPUT"


class Conflict(PictographError):
    code = "CONFLICT"


class RateLimited(PictographError):
    code = "RATE_LIMITED"


class QueryTooComplex(PictographError):
    code = "QUERY_TOO_COMPLEX"


class ServiceUnavailable(PictographError):
    """A backing service (database, Redis, storage) did not answer; safe to retry."""

    code = "INTERNAL_SERVER_ERROR"

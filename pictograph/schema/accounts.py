"""GraphQL shapes of accounts: sign-up and log-in inputs and payloads."""

from __future__ import annotations

import strawberry

from pictograph.schema.types import UserType


@strawberry.input
class SignUpInput:
    username: str
    password: str
    display_name: str | None = None


@strawberry.input
class LogInInput:
    username: str
    password: str


@strawberry.input
class UpdateProfileInput:
    display_name: str | None = None
    bio: str | None = None
    is_private: bool | None = None


@strawberry.type
class AuthPayload:
    token: str
    user: UserType

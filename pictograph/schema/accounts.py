"""GraphQL shapes of accounts: User, sign-up and log-in inputs and payloads."""

from __future__ import annotations

from datetime import datetime

import strawberry

from pictograph.records import UserRecord
from pictograph.schema.node import Node, encode_global_id


@strawberry.type(name="User")
class UserType(Node):
    username: str
    display_name: str
    bio: str
    is_private: bool
    follower_count: int
    following_count: int
    post_count: int
    created_at: datetime
    pk: strawberry.Private[int]

    @classmethod
    def from_record(cls, record: UserRecord) -> UserType:
        # The record's fields are the type's fields; only the id is re-encoded.
        fields = {name: getattr(record, name) for name in UserRecord.__slots__ if name != "id"}
        return cls(id=encode_global_id("User", record.id), pk=record.id, **fields)


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

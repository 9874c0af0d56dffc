"""GraphQL shapes of uploads: the ticket to send a photo's bytes, and the post made of it."""

from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.input
class CreateUploadInput:
    content_type: str
    byte_size: int


@strawberry.type
class HttpHeader:
    name: str
    value: str


@strawberry.type
class UploadTicket:
    upload_id: strawberry.ID
    url: str = strawberry.field(
        description="Where the client sends the bytes, directly to object storage where one "
        "is configured."
    )
    method: str
    headers: list[HttpHeader]
    expires_at: datetime


@strawberry.input
class CreatePostInput:
    upload_id: strawberry.ID
    caption: str | None = ""

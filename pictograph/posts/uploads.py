"""Upload tickets: the client puts an original straight into storage."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pictograph.errors import BadUserInput
from pictograph.media_types import ACCEPTED_TYPES
from pictograph.models import Upload
from pictograph.resources import Resources
from pictograph.storage.signing import upload_url


@dataclass(frozen=True, slots=True)
class Ticket:
    upload_id: int
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


async def create_upload(
    resources: Resources, owner_id: int, content_type: str, byte_size: int
) -> Ticket:
    content_type = content_type.strip().lower()
    if content_type not in ACCEPTED_TYPES:
        raise BadUserInput(
            f"contentType must be one of {', '.join(ACCEPTED_TYPES)}", field="contentType"
        )
    limit = resources.settings.max_upload_bytes
    if not 0 < byte_size <= limit:
        raise BadUserInput(f"byteSize must be between 1 and {limit}", field="byteSize")
    ttl = resources.settings.upload_ticket_ttl
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    key = f"uploads/{owner_id}/{secrets.token_urlsafe(24)}"
    # Signing a PUT needs no round trip, so without asking, a ticket would be handed out
    # for storage that is down and fail only at the client's PUT. Asked before the row
    # exists, so an outage leaves nothing behind.
    await resources.storage.ping()
    direct = await resources.storage.direct_upload(key, content_type, byte_size, ttl)
    upload = await Upload.create(
        owner_id=owner_id,
        content_type=content_type,
        byte_size=byte_size,
        object_key=key,
        expires_at=expires_at,
    )
    if direct is not None:
        return Ticket(upload.id, direct.url, direct.method, direct.headers, expires_at)
    url = upload_url(
        resources.settings.public_base_url,
        resources.secret_key,
        upload.id,
        int(expires_at.timestamp()),
    )
    return Ticket(upload.id, url, "PUT", {"Content-Type": content_type}, expires_at)

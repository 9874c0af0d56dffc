"""HMAC signatures for the URLs the app hands out, and unguessable object keys.

Every signature names its purpose, so a signature minted for one thing (an upload)
can never be replayed as another (a media URL)."""

from __future__ import annotations

import base64
import hmac
from urllib.parse import urlencode

from pictograph.media_types import IMAGE_TYPES, MediaSize


def sign(secret: bytes, purpose: str, *parts: object) -> str:
    message = "\n".join([purpose, *map(str, parts)]).encode()
    digest = hmac.digest(secret, message, "sha256")  # one call into OpenSSL
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(secret: bytes, signature: str, purpose: str, *parts: object) -> bool:
    # Bytes, not str: compare_digest raises on non-ASCII text, and that must be a no.
    return hmac.compare_digest(
        sign(secret, purpose, *parts).encode(), signature.encode("utf-8", "replace")
    )


def media_url(
    base_url: str, secret: bytes, viewer_id: int, post_id: int, size: str, expires: int
) -> str:
    size = size.lower()
    signature = sign(secret, "media", viewer_id, post_id, size, expires)
    # Numbers and base64url need no escaping: the query is written as it is, since a
    # page mints one of these per photo.
    return f"{base_url}/media/{post_id}/{size}?v={viewer_id}&e={expires}&s={signature}"


def upload_url(base_url: str, secret: bytes, upload_id: int, expires: int) -> str:
    query = urlencode({"e": expires, "s": sign(secret, "upload", upload_id, expires)})
    return f"{base_url}/uploads/{upload_id}?{query}"


def variant_key(secret: bytes, post_id: int, size: str, extension: str) -> str:
    """Deterministic, so a retried processing step overwrites instead of orphaning, and
    secret-derived, so nobody can guess it from the post id."""
    token = sign(secret, "variant-key", post_id)[:32]
    return f"media/{post_id}/{token}/{size.lower()}.{extension}"


def all_variant_keys(secret: bytes, post_id: int) -> list[str]:
    """Every key a processing of this post can have written, whatever its photo's type."""
    extensions = sorted({ext for _, ext in IMAGE_TYPES.values()})
    return [variant_key(secret, post_id, size, ext) for size in MediaSize for ext in extensions]

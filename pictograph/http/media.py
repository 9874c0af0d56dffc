"""GET /media/{post}/{size}: photos, served only after the signature, the expiry and the
live follow graph all say yes. Every refusal is the same 403, so nothing tells whether
the photo exists."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from botocore.exceptions import ClientError
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from pictograph.context import Context
from pictograph.errors import RateLimited
from pictograph.http.outages import answers_outages
from pictograph.outages import unavailable_service
from pictograph.records import MediaSize
from pictograph.resolvers import posts
from pictograph.storage.local import LocalDiskStorage
from pictograph.storage.s3 import S3Storage
from pictograph.storage.signing import verify

REFUSED = Response("forbidden", status_code=403, media_type="text/plain")
_SIZES = {size.lower(): size for size in MediaSize}


@answers_outages(json=False)
async def serve_media(request: Request) -> Response:
    resources = request.app.state.resources
    try:
        post_id = int(request.path_params["post_id"])
        size = _SIZES[request.path_params["size"]]
        viewer_id = int(request.query_params["v"])
        expires = int(request.query_params["e"])
        signature = request.query_params["s"]
    except (KeyError, ValueError):
        return REFUSED
    remaining = expires - int(time.time())
    if remaining <= 0 or not verify(
        resources.secret_key, signature, "media", viewer_id, post_id, size.lower(), expires
    ):
        return REFUSED
    # Counted only once the signature holds: a forged `v` cannot spend someone else's.
    try:
        await resources.rate_limits.media(viewer_id)
    except RateLimited as error:
        return too_many(error)
    # The viewer is the one the URL was signed for; the request carries no token.
    context = Context(resources, request, None, request.state.request_id)
    post = await context.loaders.posts.load(post_id)
    # Asked again on every request, through the same gate as the media field, against
    # the live graph: an unfollow, a removal or a block refuses URLs minted before it.
    variant = await posts.photo(context, viewer_id, post, size) if post else None
    if variant is None:
        return REFUSED
    headers = {
        "ETag": f'"{variant.etag}"',
        # Browsers keep the bytes but ask again (If-None-Match) before each use, so an
        # unfollow takes effect on the next view, not when a max-age runs out.
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    storage = resources.storage
    if isinstance(storage, LocalDiskStorage):
        return FileResponse(storage.path_for(variant.object_key), headers=headers,
                            media_type=variant.content_type)
    assert isinstance(storage, S3Storage)
    if resources.settings.s3_media_delivery == "redirect":
        url = await storage.direct_download(
            variant.object_key, resources.settings.media_redirect_ttl
        )
        # The redirect itself must not be cached longer than the pre-signed URL lives.
        return RedirectResponse(url, status_code=302,
                                headers={"Cache-Control": "private, no-store"})
    return await _stream_from_s3(storage, variant.object_key, request, headers,
                                 variant.content_type)


def too_many(error: RateLimited) -> Response:
    return Response(error.message, status_code=429, media_type="text/plain", headers={
        "Retry-After": str(error.extensions["retryAfter"]),
        "Cache-Control": "no-store",
    })


async def _stream_from_s3(
    storage: S3Storage, key: str, request: Request, headers: dict[str, str], content_type: str
) -> Response:
    byte_range = request.headers.get("range")
    try:
        response = await storage.open_stream(key, byte_range)
    except ClientError as error:
        if unavailable_service(error) is not None:
            raise  # S3 failing on its side (a 5xx): an outage, not a refusal
        code = error.response.get("Error", {}).get("Code")
        return Response(status_code=416) if code == "InvalidRange" else REFUSED
    body = response["Body"]

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in body.iter_chunks(64 * 1024):
                yield chunk
        finally:
            body.close()

    status = 206 if byte_range and response.get("ContentRange") else 200
    out = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(response["ContentLength"])}
    if status == 206:
        out["Content-Range"] = response["ContentRange"]
    return StreamingResponse(chunks(), status_code=status, headers=out, media_type=content_type)

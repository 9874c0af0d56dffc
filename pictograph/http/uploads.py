"""PUT /uploads/{id}: where clients send originals when no S3 is configured. It checks
what S3's pre-signed PUT would: the signature, the expiry, the type and the size."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pictograph.models import Upload
from pictograph.storage.signing import verify


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def receive_upload(request: Request) -> Response:
    resources = request.app.state.resources
    try:
        upload_id = int(request.path_params["upload_id"])
        expires = int(request.query_params["e"])
        signature = request.query_params["s"]
    except (KeyError, ValueError):
        return _refuse(403, "invalid upload URL")
    if not verify(resources.secret_key, signature, "upload", upload_id, expires):
        return _refuse(403, "invalid upload URL")
    if expires < time.time():
        return _refuse(403, "this upload URL has expired")
    upload = await Upload.get_or_none(id=upload_id)
    if upload is None or upload.post_id is not None:
        return _refuse(403, "this upload URL is no longer usable")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != upload.content_type:
        return _refuse(400, f"Content-Type must be {upload.content_type}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > upload.byte_size:
        return _refuse(413, f"at most {upload.byte_size} bytes, as declared")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > upload.byte_size:
            # Stop reading at once: a client must not fill our disk past its declaration.
            return _refuse(413, f"at most {upload.byte_size} bytes, as declared")
    if not body:
        return _refuse(400, "the body is empty")
    await resources.storage.put(upload.object_key, bytes(body), content_type)
    return Response(status_code=200)

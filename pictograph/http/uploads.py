"""PUT /uploads/{id}: where clients send originals when no S3 is configured. It checks
what S3's pre-signed PUT would: the signature, the expiry, the type and the size."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pictograph.http.outages import answers_outages
from pictograph.models import Upload
from pictograph.storage.local import LocalDiskStorage, ObjectTooLarge, UploadExpired
from pictograph.storage.signing import verify


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@answers_outages(json=True)
async def receive_upload(request: Request) -> Response:
    resources = request.app.state.resources
    storage = resources.storage
    if not isinstance(storage, LocalDiskStorage):
        return _refuse(404, "uploads go straight to object storage")
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
    try:
        # Streamed to disk, and cut off at the declared size or the ticket's expiry: a
        # client can neither fill memory nor trickle a body past the sweeper.
        written = await storage.put_stream(upload.object_key, request.stream(),
                                           upload.byte_size, expires)
    except ObjectTooLarge:
        return _refuse(413, f"at most {upload.byte_size} bytes, as declared")
    except UploadExpired:
        return _refuse(403, "this upload URL has expired")
    if not written:
        await storage.delete(upload.object_key)
        return _refuse(400, "the body is empty")
    if not await Upload.exists(id=upload_id):
        await storage.delete(upload.object_key)  # swept while we wrote
        return _refuse(403, "this upload URL is no longer usable")
    return Response(status_code=200)

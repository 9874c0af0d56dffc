"""Making real photos and taking them through the upload path, as a phone would."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image

from pictograph.resources import Resources
from pictograph.workers.media import media_consumer
from tests.support.graphql import gql


def jpeg(width: int = 1600, height: int = 1200, *, orientation: int | None = None,
         gps: bool = False) -> bytes:
    """A JPEG whose left half is red and right half blue, with optional EXIF."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x010F] = "PictographTestCam"  # Make
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


CREATE_UPLOAD = """mutation($type: String!, $size: Int!) {
  createUpload(input: {contentType: $type, byteSize: $size}) {
    uploadId url method headers { name value } expiresAt
  }
}"""
CREATE_POST = """mutation($upload: ID!, $caption: String) {
  createPost(input: {uploadId: $upload, caption: $caption}) { id status caption }
}"""


async def put_bytes(client: httpx.AsyncClient, ticket: dict[str, Any], data: bytes) -> int:
    """Sends the bytes where the ticket says: the app itself, or S3 over real HTTP."""
    headers = {h["name"]: h["value"] for h in ticket["headers"]}
    url = urlsplit(ticket["url"])
    if url.path.startswith("/uploads/"):
        response = await client.request(ticket["method"], f"{url.path}?{url.query}",
                                         content=data, headers=headers)
    else:
        async with httpx.AsyncClient() as outside:
            response = await outside.request(ticket["method"], ticket["url"], content=data,
                                             headers=headers)
    return response.status_code


async def create_upload(client: httpx.AsyncClient, token: str, data: bytes,
                        content_type: str = "image/jpeg") -> dict[str, Any]:
    result = await gql(client, CREATE_UPLOAD, {"type": content_type, "size": len(data)},
                       token=token)
    assert not result.get("errors"), result
    return result["data"]["createUpload"]


async def post_photo(client: httpx.AsyncClient, token: str, data: bytes,
                     caption: str = "", content_type: str = "image/jpeg") -> dict[str, Any]:
    """Upload, then createPost; returns the createPost result (errors included)."""
    ticket = await create_upload(client, token, data, content_type)
    assert await put_bytes(client, ticket, data) == 200
    return await gql(client, CREATE_POST, {"upload": ticket["uploadId"], "caption": caption},
                     token=token)


async def process_media(resources: Resources) -> int:
    """Runs a media worker's consumer until the stream is empty; returns messages."""
    consumer = media_consumer(resources, block_ms=1)
    await consumer.ensure_group()
    total = 0
    while handled := await consumer.step():
        total += handled
    return total


async def fetch(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    """GETs a media URL the way a browser would, following a redirect to S3."""
    parts = urlsplit(url)
    response = await client.get(f"{parts.path}?{parts.query}", headers=headers)
    if response.status_code in (301, 302, 307):
        async with httpx.AsyncClient() as outside:
            return await outside.get(response.headers["location"], headers=headers)
    return response

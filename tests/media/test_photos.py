"""A photo from a phone's upload to a follower's screen, and every way it must fail."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image

from pictograph.models import MediaVariant, Post, StorageGarbage, Upload
from pictograph.resources import Resources
from pictograph.storage.signing import media_url
from tests.support.graphql import error_codes, gql, relate_ok, sign_up, user_id
from tests.support.photos import (
    CREATE_POST,
    create_upload,
    fetch,
    jpeg,
    post_photo,
    process_media,
    put_bytes,
)

POST = """query($id: ID!) {
  post(id: $id) {
    id status caption failureReason author { username }
    thumb: media(size: THUMBNAIL) { url expiresAt width height contentType }
    full: media { url width height contentType }
  }
}"""


async def _posted(client: httpx.AsyncClient, resources: Resources, token: str,
                  data: bytes, **kwargs: str) -> str:
    result = await post_photo(client, token, data, **kwargs)
    assert not result.get("errors"), result
    assert result["data"]["createPost"]["status"] == "PROCESSING"
    await process_media(resources)
    return result["data"]["createPost"]["id"]


async def test_a_follower_sees_the_photo_and_loses_it_on_unfollow(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "author")
    fan = await sign_up(client, "fan")
    stranger = await sign_up(client, "stranger")
    await relate_ok(client, "follow", fan, await user_id(client, "author"))
    post_id = await _posted(client, resources, author, jpeg(), caption="hello")

    seen = (await gql(client, POST, {"id": post_id}, token=fan))["data"]["post"]
    assert seen["status"] == "READY" and seen["caption"] == "hello"
    assert seen["failureReason"] is None
    assert (seen["thumb"]["width"], seen["thumb"]["height"]) == (320, 240)
    assert (seen["full"]["width"], seen["full"]["height"]) == (1080, 810)
    photo = await fetch(client, seen["full"]["url"])
    assert photo.status_code == 200
    assert Image.open(io.BytesIO(photo.content)).size == (1080, 810)

    # A public account's post is visible to a stranger; its photo is not.
    other = (await gql(client, POST, {"id": post_id}, token=stranger))["data"]["post"]
    assert other["caption"] == "hello" and other["thumb"] is None and other["full"] is None
    anonymous = (await gql(client, POST, {"id": post_id}))["data"]["post"]
    assert anonymous["full"] is None
    # The URL is signed for the fan: naming another viewer in it breaks the signature.
    fan_id = parse_qs(urlsplit(seen["full"]["url"]).query)["v"][0]
    forged = seen["full"]["url"].replace(f"v={fan_id}", "v=1")
    assert (await fetch(client, forged)).status_code == 403

    await relate_ok(client, "unfollow", fan, await user_id(client, "author"))
    assert (await fetch(client, seen["full"]["url"])).status_code == 403
    after = (await gql(client, POST, {"id": post_id}, token=fan))["data"]["post"]
    assert after["full"] is None


@pytest.mark.parametrize("how", ["removeFollower", "block"])
async def test_removal_and_block_refuse_old_urls(
    client: httpx.AsyncClient, resources: Resources, how: str
) -> None:
    author = await sign_up(client, "author")
    fan = await sign_up(client, "fan")
    await relate_ok(client, "follow", fan, await user_id(client, "author"))
    post_id = await _posted(client, resources, author, jpeg(400, 300))
    url = (await gql(client, POST, {"id": post_id}, token=fan))["data"]["post"]["thumb"]["url"]
    assert (await fetch(client, url)).status_code == 200
    await relate_ok(client, how, author, await user_id(client, "fan"))
    assert (await fetch(client, url)).status_code == 403


async def test_private_accounts_hide_posts_from_non_followers(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "secret")
    stranger = await sign_up(client, "stranger")
    post_id = await _posted(client, resources, author, jpeg(400, 300))
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { id } }",
              token=author)
    assert (await gql(client, POST, {"id": post_id}, token=stranger))["data"]["post"] is None
    node = await gql(client, 'query($id: ID!) { node(id: $id) { id } }', {"id": post_id},
                     token=stranger)
    assert node["data"]["node"] is None
    posts = await gql(client, '{ user(username: "secret") { postCount posts { edges { node '
                      '{ id } } } } }', token=stranger)
    assert posts["data"]["user"] == {"postCount": 1, "posts": {"edges": []}}


async def test_exif_orientation_applied_and_metadata_stripped(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "camera")
    post_id = await _posted(client, resources, author, jpeg(1600, 1200, orientation=6, gps=True))
    seen = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]
    assert (seen["full"]["width"], seen["full"]["height"]) == (810, 1080)
    assert (seen["thumb"]["width"], seen["thumb"]["height"]) == (240, 320)
    data = (await fetch(client, seen["full"]["url"])).content
    image = Image.open(io.BytesIO(data))
    assert image.size == (810, 1080)
    assert not image.getexif() and b"Exif" not in data and b"PictographTestCam" not in data
    # Orientation 6 turns the red left half into the top half.
    top, bottom = image.getpixel((405, 100)), image.getpixel((405, 980))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


async def test_media_responses_are_private_cacheable_and_ranged(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "ranger")
    post_id = await _posted(client, resources, author, jpeg(800, 600))
    url = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]["full"]["url"]
    parts = urlsplit(url)
    direct = await client.get(f"{parts.path}?{parts.query}")
    if direct.status_code == 302:
        # S3: a pre-signed GET that lives seconds; the redirect itself is never cached.
        assert direct.headers["cache-control"] == "private, no-store"
        assert "X-Amz-Expires=10" in direct.headers["location"]
    else:
        # Kept by the browser, but asked again before each use: revocation is immediate.
        assert direct.headers["cache-control"] == "private, max-age=0, must-revalidate"
    whole = await fetch(client, url)
    part = await fetch(client, url, range="bytes=0-99")
    assert part.status_code == 206 and part.content == whole.content[:100]
    if "etag" in whole.headers:  # the app serves it; S3 serves its own ETag
        again = await fetch(client, url, **{"if-none-match": whole.headers["etag"]})
        assert again.status_code == 304


async def test_tampered_and_expired_media_urls_are_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "tamper")
    post_id = await _posted(client, resources, author, jpeg(400, 300))
    url = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]["full"]["url"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for change in ({"e": str(int(query["e"][0]) + 60)}, {"s": query["s"][0][:-2] + "AA"}):
        tampered = f"{parts.path}?{urlencode({k: v[0] for k, v in query.items()} | change)}"
        assert (await client.get(tampered)).status_code == 403
    assert (await client.get(parts.path.replace("/full", "/huge") + "?" + parts.query)
            ).status_code in (403, 404)
    non_ascii = f"{parts.path}?{urlencode({k: v[0] for k, v in query.items()} | {'s': 'é'})}"
    assert (await client.get(non_ascii)).status_code == 403
    viewer = int(query["v"][0])
    post = int(parts.path.split("/")[2])
    expired = media_url("", resources.secret_key, viewer, post, "FULL", int(time.time()) - 1)
    assert (await client.get(expired)).status_code == 403


async def test_bad_upload_requests_are_refused_before_any_url(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "uploader")
    create = """mutation($t: String!, $n: Int!) {
      createUpload(input: {contentType: $t, byteSize: $n}) { url } }"""
    for content_type, size in (("image/gif", 100), ("text/html", 100), ("image/jpeg", 0),
                               ("image/jpeg", 20 * 1024 * 1024 + 1)):
        result = await gql(client, create, {"t": content_type, "n": size}, token=token)
        assert error_codes(result) == ["BAD_USER_INPUT"], (content_type, size)
    assert await Upload.all().count() == 0
    assert error_codes(await gql(client, create, {"t": "image/png", "n": 10})) == [
        "UNAUTHENTICATED"
    ]


async def test_unusable_files_end_failed_with_a_reason_only_the_author_sees(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "unlucky")
    fan = await sign_up(client, "fan")
    await relate_ok(client, "follow", fan, await user_id(client, "unlucky"))
    good = jpeg(600, 400)
    huge_png = _png_header(30_000, 30_000)
    for data in (b"\x00" * 2048, good[: len(good) // 2], huge_png):
        post_id = await _posted(client, resources, author, data)
        mine = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]
        assert mine["status"] == "FAILED" and mine["failureReason"] and mine["full"] is None
        assert (await gql(client, POST, {"id": post_id}, token=fan))["data"]["post"] is None
    assert await MediaVariant.all().count() == 0
    # The originals are gone from storage too.
    for upload in await Upload.all():
        assert await resources.storage.size(upload.object_key) is None
    # Only the deletions that wait for the tickets to expire remain.
    assert await StorageGarbage.filter(not_before__isnull=True).count() == 0


async def test_upload_ids_are_checked(client: httpx.AsyncClient, resources: Resources) -> None:
    alice = await sign_up(client, "alice")
    eve = await sign_up(client, "eve")
    data = jpeg(300, 200)
    ticket = await create_upload(client, alice, data)
    assert await put_bytes(client, ticket, data) == 200
    theirs = await gql(client, CREATE_POST, {"upload": ticket["uploadId"]}, token=eve)
    assert error_codes(theirs) == ["NOT_FOUND"]
    first = await gql(client, CREATE_POST, {"upload": ticket["uploadId"]}, token=alice)
    assert not first.get("errors")
    again = await gql(client, CREATE_POST, {"upload": ticket["uploadId"]}, token=alice)
    assert error_codes(again) == ["CONFLICT"]
    never = await create_upload(client, alice, data)  # no bytes sent
    assert error_codes(await gql(client, CREATE_POST, {"upload": never["uploadId"]},
                                 token=alice)) == ["BAD_USER_INPUT"]
    long_caption = await gql(client, CREATE_POST, {"upload": never["uploadId"],
                                                   "caption": "x" * 2201}, token=alice)
    assert error_codes(long_caption) == ["BAD_USER_INPUT"]
    assert await Post.all().count() == 1


async def test_expired_tickets_are_refused_and_swept(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    from datetime import UTC, datetime, timedelta

    from pictograph.posts import garbage
    from pictograph.workers.storage_sweeper import sweep_storage_once

    alice = await sign_up(client, "late")
    data = jpeg(300, 200)
    ticket = await create_upload(client, alice, data)
    assert await put_bytes(client, ticket, data) == 200
    await Upload.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    result = await gql(client, CREATE_POST, {"upload": ticket["uploadId"]}, token=alice)
    assert error_codes(result) == ["BAD_USER_INPUT"]
    key = (await Upload.get()).object_key
    assert await resources.storage.size(key) == len(data)
    await sweep_storage_once(resources)  # within the grace a slow PUT may still land
    assert await Upload.all().count() == 1
    await Upload.all().update(
        expires_at=datetime.now(UTC) - garbage.UPLOAD_GRACE - timedelta(seconds=1)
    )
    await sweep_storage_once(resources)
    assert await Upload.all().count() == 0
    assert await resources.storage.size(key) is None


async def test_more_bytes_than_declared_are_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await sign_up(client, "greedy")
    declared = jpeg(300, 200)
    ticket = await create_upload(client, alice, declared)
    bigger = declared + b"\x00" * 5000
    status = await put_bytes(client, ticket, bigger)
    if status == 200:  # S3 took it (or a lenient S3 API did): createPost must refuse
        result = await gql(client, CREATE_POST, {"upload": ticket["uploadId"]}, token=alice)
        assert error_codes(result) == ["BAD_USER_INPUT"]
    else:
        assert status in (400, 403, 413)
    key = (await Upload.get()).object_key
    assert await resources.storage.size(key) is None
    assert await Post.all().count() == 0


async def test_delete_post_removes_rows_objects_and_urls(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await sign_up(client, "deleter")
    other = await sign_up(client, "other")
    post_id = await _posted(client, resources, author, jpeg(500, 500))
    url = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]["full"]["url"]
    keys = await MediaVariant.all().values_list("object_key", flat=True)
    refused = await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post_id},
                        token=other)
    assert error_codes(refused) == ["FORBIDDEN"]
    done = await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post_id},
                     token=author)
    assert done["data"] == {"deletePost": True}
    assert await Post.all().count() == 0 and await MediaVariant.all().count() == 0
    for key in keys:
        assert await resources.storage.size(key) is None
    assert (await fetch(client, url)).status_code == 403
    assert (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"] is None
    count = await gql(client, '{ viewer { postCount } }', token=author)
    assert count["data"]["viewer"]["postCount"] == 0


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


async def test_s3_can_stream_instead_of_redirecting(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    if resources.settings.embedded_storage:
        pytest.skip("local disk always serves the file itself")
    monkeypatch.setattr(resources.settings, "s3_media_delivery", "stream")
    author = await sign_up(client, "streamer")
    post_id = await _posted(client, resources, author, jpeg(640, 480))
    url = (await gql(client, POST, {"id": post_id}, token=author))["data"]["post"]["full"]["url"]
    parts = urlsplit(url)
    whole = await client.get(f"{parts.path}?{parts.query}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(whole.content)).size == (640, 480)
    part = await client.get(f"{parts.path}?{parts.query}", headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]

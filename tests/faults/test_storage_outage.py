"""S3 unreachable under a running server (a proxy in front of moto refuses every
connection): createUpload and createPost fail with a clear error, nothing is half
written, and both work again once storage is back."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from pictograph.settings import Settings
from pictograph.storage import S3Storage, open_storage
from tests.faults.stack import UNAVAILABLE, Stack, api_for, wait_until
from tests.support.photos import CREATE_POST, CREATE_UPLOAD, jpeg
from tests.support.processes import serve
from tests.support.proxy import tcp_proxy


async def bucket_keys(storage: S3Storage) -> set[str]:
    listing = await storage.client.list_objects_v2(Bucket=storage.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


async def test_storage_away_fails_uploads_and_posts_cleanly(stack: Stack,
                                                            s3_endpoint: str) -> None:
    bucket = f"pictograph-faults-{secrets.token_hex(4)}"
    settings = Settings(s3_endpoint_url=s3_endpoint, s3_bucket=bucket)
    async with open_storage(settings) as storage:
        assert isinstance(storage, S3Storage)
        await storage.ensure_bucket()
        with tcp_proxy("127.0.0.1", urlsplit(s3_endpoint).port or 80) as proxy:
            env = {**stack.env, "PICTOGRAPH_S3_ENDPOINT_URL": f"http://{proxy.address}",
                   "PICTOGRAPH_S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing"}
            with serve(env) as base:
                async with api_for(base) as api:
                    token = await api.sign_up("shutterbug")
                    photo = jpeg(120, 90)
                    uploaded = await api.upload(token, photo)  # sent while storage was up
                    original = await bucket_keys(storage)
                    assert len(original) == 1

                    proxy.refuse()
                    ticket = await api.call(CREATE_UPLOAD, {"type": "image/jpeg", "size": 999},
                                            token)
                    created = await api.call(CREATE_POST, {"upload": uploaded, "caption": "x"},
                                             token)
                    for body in (ticket, created):
                        assert body["data"] is None, body
                        [error] = body["errors"]
                        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
                        assert UNAVAILABLE in error["message"], error
                    readiness = await api.client.get("/readyz")
                    assert readiness.status_code == 503
                    assert readiness.json()["checks"]["storage"] == "unavailable"
                    # Nothing half-written: no ticket for storage that could not take it,
                    # the sent upload still unclaimed, no post, no job.
                    uploads = await stack.db.fetch("SELECT id, post_id FROM uploads")
                    assert [(row["id"], row["post_id"]) for row in uploads] == [
                        (stack.pk(uploaded), None)]
                    assert await stack.db.fetchval("SELECT count(*) FROM posts") == 0
                    assert await stack.db.fetchval("SELECT count(*) FROM outbox_events") == 0

                    proxy.resume()
                    again = await api.ok(CREATE_POST, {"upload": uploaded, "caption": "back"},
                                         token)
                    post_id = again["createPost"]["id"]

                    async def processed() -> bool:
                        return await stack.db.fetchval("SELECT status FROM posts") == "READY"

                    await wait_until(processed, "the photo is processed once storage is back")
            # What the bucket holds is what the rows point at: the variants. The
            # original went once processed.
            variants = {row["object_key"] for row in await stack.db.fetch(
                "SELECT object_key FROM media_variants WHERE post_id = $1", stack.pk(post_id))}
            assert len(variants) == 2
            assert await bucket_keys(storage) == variants

"""Both storage backends keep the same promises."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from botocore.exceptions import ClientError

from pictograph.storage import LocalDiskStorage, ObjectStorage, S3Storage
from pictograph.storage.base import ObjectNotFound


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[ObjectStorage]:
    if request.param == "local":
        async with LocalDiskStorage.open(tmp_path / "objects") as local:
            yield local
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"storage-test-{secrets.token_hex(4)}"
    async with S3Storage.open(endpoint_url=endpoint, bucket=bucket, region="us-east-1") as s3:
        await s3.ensure_bucket()
        await s3.ensure_bucket()  # idempotent
        yield s3


async def test_put_get_size_delete(storage: ObjectStorage) -> None:
    await storage.ping()
    key = f"a/{secrets.token_hex(8)}"
    assert await storage.size(key) is None
    await storage.put(key, b"photo bytes", "image/jpeg")
    assert await storage.get(key) == b"photo bytes"
    assert await storage.size(key) == len(b"photo bytes")
    await storage.delete(key)
    await storage.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        await storage.get(key)


async def test_local_keys_cannot_escape_the_root(tmp_path) -> None:
    async with LocalDiskStorage.open(tmp_path / "objects") as local:
        with pytest.raises(ValueError, match="escapes"):
            await local.put("../outside", b"x", "image/png")
    assert not (tmp_path / "outside").exists()


async def test_the_bucket_lets_configured_origins_put_uploads(s3_endpoint: str) -> None:
    bucket = f"storage-test-{secrets.token_hex(4)}"
    async with S3Storage.open(endpoint_url=s3_endpoint, bucket=bucket,
                              region="us-east-1") as s3:
        await s3.ensure_bucket()
        await s3.allow_origins([])  # nothing to remove yet
        await s3.allow_origins(["https://app.example", "http://localhost:5173"])
        rules = (await s3.client.get_bucket_cors(Bucket=bucket))["CORSRules"]
        assert [rule["AllowedOrigins"] for rule in rules] == [
            ["https://app.example", "http://localhost:5173"]]
        assert "PUT" in rules[0]["AllowedMethods"]
        assert rules[0]["AllowedHeaders"] == ["content-type"]
        # A browser's preflight for a PUT from one of them is answered.
        async with httpx.AsyncClient() as client:
            preflight = await client.options(
                f"{s3_endpoint}/{bucket}/photo", headers={
                    "Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "content-type"})
        assert preflight.headers.get("access-control-allow-origin") == "https://app.example"
        await s3.allow_origins([])  # the configuration is the truth: no origins, no rules
        with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
            await s3.client.get_bucket_cors(Bucket=bucket)

"""Both storage backends keep the same promises."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

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

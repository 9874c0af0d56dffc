"""Object storage behind one small interface: S3 (aioboto3) or local disk."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from pictograph.settings import Settings
from pictograph.storage.base import ObjectStorage
from pictograph.storage.local import LocalDiskStorage
from pictograph.storage.s3 import S3Storage


def open_storage(settings: Settings) -> AbstractAsyncContextManager[ObjectStorage]:
    if settings.s3_endpoint_url is None:
        return LocalDiskStorage.open(settings.data_dir / "objects")
    return S3Storage.open(
        endpoint_url=settings.s3_endpoint_url,
        bucket=settings.s3_bucket,
        region=settings.s3_region,
    )


__all__ = ["LocalDiskStorage", "ObjectStorage", "S3Storage", "open_storage"]

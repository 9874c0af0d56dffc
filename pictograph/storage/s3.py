from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pictograph.storage.base import DirectUpload, ObjectNotFound

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


class S3Storage:
    """A private bucket on any S3-compatible API (AWS, MinIO, moto)."""

    name = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    @asynccontextmanager
    async def open(cls, *, endpoint_url: str, bucket: str, region: str) -> AsyncIterator[S3Storage]:
        session = aioboto3.Session()
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=3,
            read_timeout=10,
        )
        async with session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        ) as client:
            yield cls(client, bucket)

    async def ensure_bucket(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _MISSING:
                raise
            await self.client.create_bucket(Bucket=self.bucket)

    async def allow_origins(self, origins: list[str]) -> None:
        # A browser on one of these origins PUTs an upload ticket's bytes straight into
        # the bucket, which it may only do after a CORS preflight the bucket answers.
        # The configuration is the truth: no origins, no rules.
        if not origins:
            try:
                await self.client.delete_bucket_cors(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                    raise
            return
        await self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": origins,
            "AllowedMethods": ["PUT", "GET", "HEAD"],
            # The ticket signs Content-Type; the browser sets the length itself.
            "AllowedHeaders": ["content-type"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }]})

    async def ping(self) -> None:
        await self.client.head_bucket(Bucket=self.bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    async def get(self, key: str) -> bytes:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        async with response["Body"] as body:
            return await body.read()

    async def size(self, key: str) -> int | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def direct_upload(
        self, key: str, content_type: str, byte_size: int, expires_in: int
    ) -> DirectUpload:
        # Content type and length are signed: a client cannot swap either.
        url = await self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": byte_size,
            },
            ExpiresIn=expires_in,
        )
        return DirectUpload(url=url, method="PUT", headers={"Content-Type": content_type})

    async def direct_download(self, key: str, expires_in: int) -> str:
        return await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def open_stream(self, key: str, byte_range: str | None = None) -> dict[str, Any]:
        """The raw GetObject response (Body streams), for proxying to a client."""
        params = {"Bucket": self.bucket, "Key": key}
        if byte_range:
            params["Range"] = byte_range
        return await self.client.get_object(**params)

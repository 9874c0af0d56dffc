from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pictograph.storage.base import DirectUpload, ObjectNotFound


class ObjectTooLarge(Exception):
    pass


class UploadExpired(Exception):
    pass


class LocalDiskStorage:
    """Objects as files under one folder, for the embedded default."""

    name = "local-disk"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    @asynccontextmanager
    async def open(cls, root: Path) -> AsyncIterator[LocalDiskStorage]:
        storage = cls(root)
        await storage.ensure_bucket()
        yield storage

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys come from our own code, but a key must never reach outside the root.
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError("object key escapes the storage root")
        return path

    async def ensure_bucket(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def allow_origins(self, origins: list[str]) -> None:
        """Nothing to set: uploads come to the app (PUT /uploads), whose CORS middleware
        answers for the same origins."""

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"storage folder {self.root} is missing")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write_atomically, self.path_for(key), data)

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        # Write then rename, so a reader never sees half an object.
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], limit: int, deadline: float
    ) -> int:
        """Writes chunks to the object without holding them in memory; stops (and
        leaves nothing) past `limit` bytes or the `deadline` (a time.time())."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        written = 0
        try:
            with partial.open("wb") as file:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        raise ObjectTooLarge(limit)
                    if time.time() > deadline:
                        raise UploadExpired
                    await asyncio.to_thread(file.write, chunk)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return written

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_for(key).read_bytes)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def size(self, key: str) -> int | None:
        try:
            return self.path_for(key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    async def direct_upload(
        self, key: str, content_type: str, byte_size: int, expires_in: int
    ) -> DirectUpload | None:
        return None

    async def direct_download(self, key: str, expires_in: int) -> str | None:
        return None

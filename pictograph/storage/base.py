from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ObjectNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DirectUpload:
    """A pre-signed request that puts bytes straight into the bucket."""

    url: str
    method: str
    headers: dict[str, str]


class ObjectStorage(Protocol):
    """Private object storage. Keys are opaque strings chosen by the caller."""

    name: str

    async def ensure_bucket(self) -> None:
        """Creates the bucket (or folder) if it is missing."""

    async def allow_origins(self, origins: list[str]) -> None:
        """Lets pages on these origins send uploads straight to the storage (CORS)."""

    async def ping(self) -> None:
        """Raises when the storage does not answer."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when there is none."""

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

    async def delete(self, key: str) -> None:
        """Removes the object; a missing object is not an error."""

    async def direct_upload(
        self, key: str, content_type: str, byte_size: int, expires_in: int
    ) -> DirectUpload | None:
        """A pre-signed PUT for the client, or None where the app takes uploads itself."""

    async def direct_download(self, key: str, expires_in: int) -> str | None:
        """A pre-signed GET URL, or None where the app serves the bytes itself."""

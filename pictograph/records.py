"""Plain records passed between layers: what the caches store and the schema renders."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pictograph.models import User


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    bio: str
    is_private: bool
    follower_count: int
    following_count: int
    post_count: int
    created_at: datetime

    @classmethod
    def from_model(cls, user: User) -> UserRecord:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            bio=user.bio,
            is_private=user.is_private,
            follower_count=user.follower_count,
            following_count=user.following_count,
            post_count=user.post_count,
            created_at=user.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserRecord:
        return cls(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})


class MediaSize(StrEnum):
    THUMBNAIL = "THUMBNAIL"  # longest side at most 320 px
    FULL = "FULL"  # longest side at most 1080 px


@dataclass(frozen=True, slots=True)
class VariantRecord:
    object_key: str
    width: int
    height: int
    content_type: str
    byte_size: int
    etag: str


@dataclass(frozen=True, slots=True)
class PostRecord:
    id: int
    author_id: int
    caption: str
    status: str
    failure_reason: str | None
    created_at: datetime
    variants: dict[str, VariantRecord]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostRecord:
        return cls(
            **{
                **data,
                "created_at": datetime.fromisoformat(data["created_at"]),
                "variants": {k: VariantRecord(**v) for k, v in data["variants"].items()},
            }
        )

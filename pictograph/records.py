"""Plain records passed between layers: what the caches store and the schema renders, and
what one user is to another (a relation, a pair, a whole graph as the database holds it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pictograph.media_types import MediaSize
from pictograph.models import User

__all__ = ["MediaSize"]  # kept here too: a post record names its sizes by it


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

class FollowStatus(StrEnum):
    NONE = "NONE"
    REQUESTED = "REQUESTED"
    FOLLOWING = "FOLLOWING"
    SELF = "SELF"
    BLOCKED = "BLOCKED"


@dataclass(frozen=True, slots=True)
class Relation:
    """The viewer's relation to one other user."""

    following: bool = False  # the viewer is an accepted follower of the other
    followed_by: bool = False  # the other is an accepted follower of the viewer
    requested: bool = False  # the viewer asked to follow the other
    blocking: bool = False  # the viewer blocked the other
    blocked_by: bool = False  # the other blocked the viewer

    @property
    def blocked(self) -> bool:
        return self.blocking or self.blocked_by


NO_RELATION = Relation()


@dataclass
class GraphSnapshot:
    """One user's relations: (other user, follow id) pairs, ids order newest first."""

    user_id: int
    floor: int = 0  # the user's graph_seq when read: holds every change numbered up to it
    following: dict[int, int] = field(default_factory=dict)
    followers: dict[int, int] = field(default_factory=dict)
    requested: dict[int, int] = field(default_factory=dict)
    requests: dict[int, int] = field(default_factory=dict)
    blocking: set[int] = field(default_factory=set)
    blocked_by: set[int] = field(default_factory=set)

    def relation_to(self, other_id: int) -> Relation:
        return Relation(
            following=other_id in self.following,
            followed_by=other_id in self.followers,
            requested=other_id in self.requested,
            blocking=other_id in self.blocking,
            blocked_by=other_id in self.blocked_by,
        )


@dataclass(frozen=True, slots=True)
class PairState:
    """Everything between two users, as the database holds it after a change.

    Writing the whole pair into both users' cached graphs (rather than a delta)
    makes every cache update idempotent: a retry or a repeat converges.
    """

    a: int
    b: int
    a_follows_b: int | None = None  # follow id when accepted
    b_follows_a: int | None = None
    a_requested_b: int | None = None  # follow id while pending
    b_requested_a: int | None = None
    a_blocks_b: bool = False
    b_blocks_a: bool = False

    def relation_for_a(self) -> Relation:
        return Relation(
            following=self.a_follows_b is not None,
            followed_by=self.b_follows_a is not None,
            requested=self.a_requested_b is not None,
            blocking=self.a_blocks_b,
            blocked_by=self.b_blocks_a,
        )

"""What one user is to another, and a user's whole graph as loaded from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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

"""Tortoise models: the durable truth. They know nothing of GraphQL or Redis."""

from pictograph.models.accounts import AuthToken, User
from pictograph.models.cache_trust import RedisEpoch
from pictograph.models.follows import Block, Follow, FollowState, OutboxEvent
from pictograph.models.nodes import IdNodeLease
from pictograph.models.posts import MediaVariant, Post, PostStatus, StorageGarbage, Upload

__all__ = [
    "AuthToken",
    "Block",
    "Follow",
    "FollowState",
    "IdNodeLease",
    "MediaVariant",
    "OutboxEvent",
    "Post",
    "PostStatus",
    "RedisEpoch",
    "StorageGarbage",
    "Upload",
    "User",
]

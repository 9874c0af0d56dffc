"""Tortoise models: the durable truth. They know nothing of GraphQL or Redis."""

from pictograph.models.accounts import AuthToken, User
from pictograph.models.follows import Block, Follow, FollowState, OutboxEvent

__all__ = ["AuthToken", "Block", "Follow", "FollowState", "OutboxEvent", "User"]

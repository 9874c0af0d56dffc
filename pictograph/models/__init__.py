"""Tortoise models: the durable truth. They know nothing of GraphQL or Redis."""

from pictograph.models.accounts import AuthToken, User

__all__ = ["AuthToken", "User"]

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from pictograph.ids import new_id


class FollowState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"


class Follow(Model):
    """One user following (or asking to follow) another. The id orders lists newest first."""

    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    follower: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="following_rows", on_delete=fields.CASCADE
    )
    followee: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="follower_rows", on_delete=fields.CASCADE
    )
    state = fields.CharEnumField(FollowState, max_length=10)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "follows"
        unique_together = (("follower", "followee"),)
        indexes = (("followee_id", "state", "id"), ("follower_id", "state", "id"))


class Block(Model):
    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    blocker: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="blocking_rows", on_delete=fields.CASCADE
    )
    blocked: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="blocked_by_rows", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "blocks"
        unique_together = (("blocker", "blocked"),)
        indexes = (("blocked_id",),)


class OutboxEvent(Model):
    """An event written in the same transaction as the change it describes.

    It is published to its Redis Stream right after the commit; the relay worker
    publishes any that a crash or a Redis outage left behind.
    """

    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    stream = fields.CharField(max_length=64)
    payload = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "outbox_events"

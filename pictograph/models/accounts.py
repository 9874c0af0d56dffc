from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from pictograph.ids import new_id


class User(Model):
    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    username = fields.CharField(max_length=30, unique=True)
    display_name = fields.CharField(max_length=64, default="")
    bio = fields.CharField(max_length=300, default="")
    is_private = fields.BooleanField(default=False)
    password_hash = fields.CharField(max_length=200)
    # Denormalised counts, changed with F() expressions in the same transaction as the
    # row they count, so they stay exact under concurrent writes.
    follower_count = fields.IntField(default=0)
    following_count = fields.IntField(default=0)
    post_count = fields.IntField(default=0)
    # Bumped by every change to this user's follow graph, under the row lock, so it
    # orders changes exactly as they commit (see cache/graph.py).
    graph_seq = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"

    def __str__(self) -> str:
        return self.username


class AuthToken(Model):
    """A bearer token, of which only the SHA-256 is stored."""

    id = fields.BigIntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="tokens", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "auth_tokens"

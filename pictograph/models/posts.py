from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from pictograph.ids import new_id


class PostStatus(StrEnum):
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


class Upload(Model):
    """A ticket to put one original into storage, and what happened to it."""

    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    owner: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="uploads", on_delete=fields.CASCADE
    )
    content_type = fields.CharField(max_length=32)
    byte_size = fields.BigIntField()
    object_key = fields.CharField(max_length=200)
    expires_at = fields.DatetimeField(db_index=True)
    post_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "uploads"
        # Unique per owner, the column the table is distributed by when it is sharded
        # (docs/scaling.md): Citus enforces only constraints that include it. As
        # strict as unique keys of one column: an object key starts with its owner's id,
        # and a post claims only its author's upload.
        unique_together = (("owner", "object_key"), ("owner", "post_id"))


class Post(Model):
    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)
    author: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.User", related_name="posts", on_delete=fields.CASCADE
    )
    caption = fields.TextField(default="")
    status = fields.CharEnumField(PostStatus, max_length=10, default=PostStatus.PROCESSING)
    failure_reason = fields.CharField(max_length=200, null=True)
    upload_id = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "posts"
        indexes = (("author_id", "status", "id"),)
        # Per author, as uploads' keys are (see Upload): an upload is its owner's alone.
        unique_together = (("author", "upload_id"),)


class MediaVariant(Model):
    """One served rendition of a post's photo (THUMBNAIL or FULL)."""

    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Post", related_name="variants", on_delete=fields.CASCADE
    )
    size = fields.CharField(max_length=10)
    object_key = fields.CharField(max_length=200)
    width = fields.IntField()
    height = fields.IntField()
    content_type = fields.CharField(max_length=32)
    byte_size = fields.IntField()
    etag = fields.CharField(max_length=64)

    class Meta:
        table = "media_variants"
        unique_together = (("post", "size"),)


class StorageGarbage(Model):
    """An object to delete from storage. Written in the transaction that makes the
    object useless, so a crash before the delete leaves a row to retry, not an orphan."""

    id = fields.BigIntField(primary_key=True)
    object_key = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Not before this moment: an original's ticket may still let a client PUT it again.
    not_before = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "storage_garbage"

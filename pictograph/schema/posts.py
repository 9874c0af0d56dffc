"""GraphQL shapes of posts, photos and uploads."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from pictograph.context import Context
from pictograph.models import PostStatus
from pictograph.records import MediaSize, PostRecord, UserRecord
from pictograph.resolvers import posts
from pictograph.schema.node import Node, encode_global_id
from pictograph.schema.pagination import PageInfo, encode_cursor

if TYPE_CHECKING:
    from pictograph.schema.users import UserType

PostStatusEnum = strawberry.enum(PostStatus, name="PostStatus")
MediaSizeEnum = strawberry.enum(MediaSize, name="MediaSize")


@strawberry.type
class Media:
    url: str = strawberry.field(
        description="Absolute, short-lived, signed for this viewer; the server checks the "
        "follow graph again on every request."
    )
    expires_at: datetime
    width: int
    height: int
    content_type: str


@strawberry.type(name="Post")
class PostType(Node):
    caption: str
    created_at: datetime
    status: PostStatusEnum  # type: ignore[valid-type]
    record: strawberry.Private[PostRecord]
    # The author's record when the page that holds this post read it already.
    author_record: strawberry.Private[UserRecord | None] = None

    @classmethod
    def from_record(cls, record: PostRecord, author: UserRecord | None = None) -> PostType:
        return cls(
            id=encode_global_id("Post", record.id),
            caption=record.caption,
            created_at=record.created_at,
            status=PostStatus(record.status),
            record=record,
            author_record=author,
        )

    # `author` and `media` are plain functions that answer at once when the page has
    # read what they need, and hand graphql-core an awaitable only when it has not: a
    # page of posts then resolves without a task per field.

    @strawberry.field
    def author(
        self, info: Info[Context, None]
    ) -> Annotated[UserType, strawberry.lazy("pictograph.schema.users")]:
        from pictograph.schema.users import UserType

        if self.author_record is not None:
            return UserType.from_record(self.author_record)
        return self._load_author(info.context)

    async def _load_author(self, context: Context) -> UserType:
        from pictograph.schema.users import UserType

        record = await context.loaders.users.load(self.record.author_id)
        assert record is not None  # a post's author row outlives the post (cascade)
        return UserType.from_record(record)

    @strawberry.field(
        description="Null where the viewer may not see this photo, or while it is not READY."
    )
    def media(
        self,
        info: Info[Context, None],
        size: MediaSizeEnum = MediaSize.FULL,  # type: ignore[valid-type]
    ) -> Media | None:
        minted = posts.media_of(info.context, self.record, MediaSize(size))
        if inspect.isawaitable(minted):
            return _media_later(minted)  # type: ignore[return-value]
        return _media(minted)

    @strawberry.field(description="Why processing failed; only the author sees it.")
    async def failure_reason(self, info: Info[Context, None]) -> str | None:
        return await posts.failure_reason(info.context, self.record)


def _media(minted: posts.MintedMedia | None) -> Media | None:
    if minted is None:
        return None
    return Media(url=minted.url, expires_at=minted.expires_at, width=minted.width,
                 height=minted.height, content_type=minted.content_type)


async def _media_later(minted: Awaitable[posts.MintedMedia | None]) -> Media | None:
    return _media(await minted)


def post_or_none(record: PostRecord | None) -> PostType | None:
    return PostType.from_record(record) if record is not None else None


@strawberry.type
class PostEdge:
    node: PostType
    cursor: str


@strawberry.type
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo

    @classmethod
    def from_records(
        cls, records: list[PostRecord], has_next: bool, after: str | None,
        authors: Mapping[int, UserRecord] | None = None,
    ) -> PostConnection:
        """`authors`: the records of the posts' authors, where the page has them."""
        known = authors or {}
        edges = [
            PostEdge(node=PostType.from_record(record, known.get(record.author_id)),
                     cursor=encode_cursor(record.id))
            for record in records
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.input
class CreateUploadInput:
    content_type: str
    byte_size: int


@strawberry.type
class HttpHeader:
    name: str
    value: str


@strawberry.type
class UploadTicket:
    upload_id: strawberry.ID
    url: str = strawberry.field(
        description="Where the client sends the bytes, directly to object storage where one "
        "is configured."
    )
    method: str
    headers: list[HttpHeader]
    expires_at: datetime


@strawberry.input
class CreatePostInput:
    upload_id: strawberry.ID
    caption: str | None = ""

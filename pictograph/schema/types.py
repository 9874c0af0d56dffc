"""The User and Post types and their connections. They refer to each other (a user's
posts, a post's author), so they live in one module. Shape only: every field hands its
question to resolvers/."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import strawberry
from strawberry.types import Info

from pictograph.context import Context
from pictograph.models import PostStatus
from pictograph.records import FollowStatus, MediaSize, PostRecord, UserRecord
from pictograph.resolvers import follows, posts
from pictograph.resolvers.follows import UserPage
from pictograph.schema.node import Node, encode_global_id
from pictograph.schema.pagination import PageInfo, decode_cursor, encode_cursor, page_size

FollowStatusEnum = strawberry.enum(FollowStatus, name="FollowStatus")


def _follower_count(root: UserType, info: Info[Context, None]) -> int:
    return follows.follower_count(info.context, root.record)


def _following_count(root: UserType, info: Info[Context, None]) -> int:
    return follows.following_count(info.context, root.record)


@strawberry.type(name="User")
class UserType(Node):
    username: str
    display_name: str
    bio: str
    is_private: bool
    follower_count: int = strawberry.field(resolver=_follower_count)
    following_count: int = strawberry.field(resolver=_following_count)
    post_count: int
    created_at: datetime
    record: strawberry.Private[UserRecord]

    @classmethod
    def from_record(cls, record: UserRecord) -> UserType:
        # The record's fields are the type's fields, but for those a resolver answers;
        # only the id is re-encoded.
        fields = {name: getattr(record, name) for name in UserRecord.__slots__
                  if name not in _RESOLVED}
        return cls(id=encode_global_id("User", record.id), record=record, **fields)

    @strawberry.field(description="The viewer's relation to this user.")
    async def viewer_follow_status(self, info: Info[Context, None]) -> FollowStatusEnum:  # type: ignore[valid-type]
        return await follows.viewer_follow_status(info.context, self.record)

    @strawberry.field
    async def follows_viewer(self, info: Info[Context, None]) -> bool:
        return await follows.follows_viewer(info.context, self.record)

    @strawberry.field(description="Empty where the viewer may not see this user's posts.")
    async def posts(
        self, info: Info[Context, None], first: int | None = 20, after: str | None = None
    ) -> PostConnection:
        records, has_next = await posts.posts_of(
            info.context, self.record, page_size(first), decode_cursor(after)
        )
        return PostConnection.from_records(records, has_next, after,
                                           {self.record.id: self.record})

    @strawberry.field
    async def followers(
        self, info: Info[Context, None], first: int | None = 20, after: str | None = None
    ) -> UserConnection:
        page = await follows.user_list(
            info.context, self.record, "followers", page_size(first), decode_cursor(after)
        )
        return UserConnection.from_page(page, after)

    @strawberry.field
    async def following(
        self, info: Info[Context, None], first: int | None = 20, after: str | None = None
    ) -> UserConnection:
        page = await follows.user_list(
            info.context, self.record, "following", page_size(first), decode_cursor(after)
        )
        return UserConnection.from_page(page, after)


# Record fields a resolver answers (a cached answer that shows them depends on more).
_RESOLVED = {"id", "follower_count", "following_count"}


def user_or_none(record: UserRecord | None) -> UserType | None:
    return UserType.from_record(record) if record is not None else None


@strawberry.type
class UserEdge:
    node: UserType
    cursor: str


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: UserPage, after: str | None) -> UserConnection:
        edges = [
            UserEdge(node=UserType.from_record(record), cursor=encode_cursor(position))
            for record, position in page.users
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class FollowPayload:
    user: UserType = strawberry.field(description="The other user.")
    status: FollowStatusEnum = strawberry.field(  # type: ignore[valid-type]
        description="The viewer's relation to that user after the change."
    )


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

    # `author` and `media` answer at once when the page has read what they need, and
    # hand graphql-core an awaitable only when it has not: a page of posts then resolves
    # without a task per field. graphql-core calls them directly (DIRECT_RESOLVERS).

    @strawberry.field
    def author(self, info: Info[Context, None]) -> UserType:
        return post_author(self, info.context)  # type: ignore[return-value]

    @strawberry.field(
        description="Null where the viewer may not see this photo, or while it is not READY."
    )
    def media(
        self,
        info: Info[Context, None],
        size: MediaSizeEnum = MediaSize.FULL,  # type: ignore[valid-type]
    ) -> Media | None:
        return post_media(self, info.context, MediaSize(size))  # type: ignore[return-value]

    @strawberry.field(description="Why processing failed; only the author sees it.")
    async def failure_reason(self, info: Info[Context, None]) -> str | None:
        return await posts.failure_reason(info.context, self.record)


def post_author(post: PostType, context: Context) -> UserType | Awaitable[UserType]:
    if post.author_record is not None:
        return UserType.from_record(post.author_record)
    return _load_author(context, post.record.author_id)


async def _load_author(context: Context, author_id: int) -> UserType:
    record = await context.loaders.users.load(author_id)
    assert record is not None  # a post's author row outlives the post (cascade)
    return UserType.from_record(record)


def post_media(
    post: PostType, context: Context, size: MediaSize
) -> Media | Awaitable[Media | None] | None:
    minted = posts.media_of(context, post.record, size)
    if inspect.isawaitable(minted):
        return _media_later(minted)
    return _media(minted)


# The two fields every post on a page resolves, called by graphql-core as they are,
# past Strawberry's wrapping of each call (an Info, argument conversion, the field
# extension chain: neither field has extensions or permissions, and installing checks
# that). On a feed page of 20 that wrapping was a tenth of an uncached read's CPU.
DIRECT_RESOLVERS: dict[tuple[str, str], Callable[..., object]] = {
    ("Post", "author"): lambda post, info: post_author(post, info.context),
    # graphql-core fills in the argument's default (FULL) where a query leaves it out.
    ("Post", "media"): lambda post, info, size: post_media(post, info.context,
                                                           MediaSize(size)),
}


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

"""The User type and lists of users."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from pictograph.context import Context
from pictograph.graph.relation import FollowStatus
from pictograph.records import UserRecord
from pictograph.resolvers import follows
from pictograph.resolvers import posts as post_resolvers
from pictograph.resolvers.follows import UserPage
from pictograph.schema.node import Node, encode_global_id
from pictograph.schema.pagination import PageInfo, decode_cursor, encode_cursor, page_size
from pictograph.visibility import viewer_follow_status

if TYPE_CHECKING:
    from pictograph.schema.posts import PostConnection

FollowStatusEnum = strawberry.enum(FollowStatus, name="FollowStatus")


@strawberry.type(name="User")
class UserType(Node):
    username: str
    display_name: str
    bio: str
    is_private: bool
    follower_count: int
    following_count: int
    post_count: int
    created_at: datetime
    record: strawberry.Private[UserRecord]

    @classmethod
    def from_record(cls, record: UserRecord) -> UserType:
        # The record's fields are the type's fields; only the id is re-encoded.
        fields = {name: getattr(record, name) for name in UserRecord.__slots__ if name != "id"}
        return cls(id=encode_global_id("User", record.id), record=record, **fields)

    @strawberry.field(description="The viewer's relation to this user.")
    async def viewer_follow_status(self, info: Info[Context, None]) -> FollowStatusEnum:  # type: ignore[valid-type]
        context = info.context
        return await viewer_follow_status(context.graph, await context.viewer_id(), self.record.id)

    @strawberry.field
    async def follows_viewer(self, info: Info[Context, None]) -> bool:
        viewer_id = await info.context.viewer_id()
        if viewer_id is None or viewer_id == self.record.id:
            return False
        relation = await info.context.graph.relation(viewer_id, self.record.id)
        return relation.followed_by and not relation.blocked

    @strawberry.field(description="Empty where the viewer may not see this user's posts.")
    async def posts(
        self, info: Info[Context, None], first: int | None = 20, after: str | None = None
    ) -> Annotated[PostConnection, strawberry.lazy("pictograph.schema.posts")]:
        from pictograph.schema.posts import PostConnection

        records, has_next = await post_resolvers.posts_of(
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

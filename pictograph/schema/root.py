"""The Query and Mutation roots: each field hands its work to resolvers/."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from pictograph.context import Context
from pictograph.resolvers import accounts, feed, follows, posts
from pictograph.schema.accounts import AuthPayload, LogInInput, SignUpInput, UpdateProfileInput
from pictograph.schema.node import Node, decode_global_id, decode_id_of, encode_global_id
from pictograph.schema.pagination import decode_cursor, page_size
from pictograph.schema.types import (
    FollowPayload,
    PostConnection,
    PostType,
    UserConnection,
    UserType,
    post_or_none,
    user_or_none,
)
from pictograph.schema.uploads import CreatePostInput, CreateUploadInput, HttpHeader, UploadTicket

ContextInfo = Info[Context, None]


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user, or null.")
    async def viewer(self, info: ContextInfo) -> UserType | None:
        return user_or_none(await accounts.viewer(info.context))

    @strawberry.field
    async def user(self, info: ContextInfo, username: str) -> UserType | None:
        return user_or_none(await accounts.user_by_username(info.context, username))

    @strawberry.field
    async def node(self, info: ContextInfo, id: strawberry.ID) -> Node | None:
        decoded = decode_global_id(id)
        if decoded is None:
            return None
        type_name, pk = decoded
        if type_name == "User":
            return user_or_none(await accounts.visible_user(info.context, pk))
        if type_name == "Post":
            return post_or_none(await posts.visible_post(info.context, pk))
        return None

    @strawberry.field
    async def post(self, info: ContextInfo, id: strawberry.ID) -> PostType | None:
        post_id = decode_id_of(id, "Post")
        if post_id is None:
            return None
        return post_or_none(await posts.visible_post(info.context, post_id))

    @strawberry.field(
        description="The viewer's home feed, newest first: their own posts and those of "
        "everyone they follow. Needs a token."
    )
    async def feed(
        self, info: ContextInfo, first: int | None = 20, after: str | None = None
    ) -> PostConnection:
        page = await feed.home_feed(info.context, page_size(first), decode_cursor(after))
        return PostConnection.from_records(page.posts, page.has_next, after, page.authors)

    @strawberry.field(description="Pending requests to follow the viewer (private accounts).")
    async def follow_requests(
        self, info: ContextInfo, first: int | None = 20, after: str | None = None
    ) -> UserConnection:
        page = await follows.follow_requests(info.context, page_size(first), decode_cursor(after))
        return UserConnection.from_page(page, after)


async def _follow_change(info: ContextInfo, user_id: str, change: str) -> FollowPayload:
    record, status = await follows.change_relation(
        info.context, decode_id_of(user_id, "User"), change
    )
    return FollowPayload(user=UserType.from_record(record), status=status)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def sign_up(self, info: ContextInfo, input: SignUpInput) -> AuthPayload:
        token, record = await accounts.sign_up(
            info.context, input.username, input.password, input.display_name
        )
        return AuthPayload(token=token, user=UserType.from_record(record))

    @strawberry.mutation
    async def log_in(self, info: ContextInfo, input: LogInInput) -> AuthPayload:
        token, record = await accounts.log_in(info.context, input.username, input.password)
        return AuthPayload(token=token, user=UserType.from_record(record))

    @strawberry.mutation(description="Revokes the token that made this request.")
    async def log_out(self, info: ContextInfo) -> bool:
        return await accounts.log_out(info.context)

    @strawberry.mutation
    async def update_profile(
        self,
        info: ContextInfo,
        input: UpdateProfileInput,
    ) -> UserType:
        record = await accounts.update_profile(
            info.context, input.display_name, input.bio, input.is_private
        )
        return UserType.from_record(record)

    @strawberry.mutation(
        description="Follows a public account at once; asks a private one (status REQUESTED)."
    )
    async def follow(self, info: ContextInfo, user_id: strawberry.ID) -> FollowPayload:
        return await _follow_change(info, user_id, "follow")

    @strawberry.mutation
    async def unfollow(self, info: ContextInfo, user_id: strawberry.ID) -> FollowPayload:
        return await _follow_change(info, user_id, "unfollow")

    @strawberry.mutation
    async def approve_follow_request(
        self, info: ContextInfo, user_id: strawberry.ID
    ) -> FollowPayload:
        return await _follow_change(info, user_id, "approve_follow_request")

    @strawberry.mutation
    async def reject_follow_request(
        self, info: ContextInfo, user_id: strawberry.ID
    ) -> FollowPayload:
        return await _follow_change(info, user_id, "reject_follow_request")

    @strawberry.mutation(description="Makes that user stop following the viewer.")
    async def remove_follower(self, info: ContextInfo, user_id: strawberry.ID) -> FollowPayload:
        return await _follow_change(info, user_id, "remove_follower")

    @strawberry.mutation
    async def block(self, info: ContextInfo, user_id: strawberry.ID) -> FollowPayload:
        return await _follow_change(info, user_id, "block")

    @strawberry.mutation
    async def unblock(self, info: ContextInfo, user_id: strawberry.ID) -> FollowPayload:
        return await _follow_change(info, user_id, "unblock")

    @strawberry.mutation
    async def create_upload(
        self,
        info: ContextInfo,
        input: CreateUploadInput,
    ) -> UploadTicket:
        ticket = await posts.new_upload(info.context, input.content_type, input.byte_size)
        return UploadTicket(
            upload_id=encode_global_id("Upload", ticket.upload_id),
            url=ticket.url,
            method=ticket.method,
            headers=[HttpHeader(name=k, value=v) for k, v in ticket.headers.items()],
            expires_at=ticket.expires_at,
        )

    @strawberry.mutation
    async def create_post(self, info: ContextInfo, input: CreatePostInput) -> PostType:
        record = await posts.new_post(
            info.context, decode_id_of(input.upload_id, "Upload"), input.caption
        )
        return PostType.from_record(record)

    @strawberry.mutation
    async def delete_post(self, info: ContextInfo, id: strawberry.ID) -> bool:
        return await posts.remove_post(info.context, decode_id_of(id, "Post"))

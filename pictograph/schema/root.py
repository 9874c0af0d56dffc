"""The Query and Mutation roots: each field hands its work to resolvers/."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from pictograph.context import Context
from pictograph.resolvers import accounts
from pictograph.schema.accounts import (
    AuthPayload,
    LogInInput,
    SignUpInput,
    UpdateProfileInput,
    UserType,
)
from pictograph.schema.node import Node, decode_global_id

ContextInfo = Info[Context, None]


def _user_or_none(record: object) -> UserType | None:
    return UserType.from_record(record) if record is not None else None  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user, or null.")
    async def viewer(self, info: ContextInfo) -> UserType | None:
        return _user_or_none(await accounts.viewer(info.context))

    @strawberry.field
    async def user(self, info: ContextInfo, username: str) -> UserType | None:
        return _user_or_none(await accounts.user_by_username(info.context, username))

    @strawberry.field
    async def node(self, info: ContextInfo, id: strawberry.ID) -> Node | None:
        decoded = decode_global_id(id)
        if decoded is None:
            return None
        type_name, pk = decoded
        if type_name == "User":
            return _user_or_none(await info.context.loaders.users.load(pk))
        return None


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

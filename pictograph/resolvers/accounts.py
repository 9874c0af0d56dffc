"""Sign-up, log-in, log-out and profile changes."""

from __future__ import annotations

import re

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pictograph.cache.users import ProfileCache
from pictograph.context import Context
from pictograph.errors import BadUserInput, Conflict, Unauthenticated
from pictograph.models import User
from pictograph.records import UserRecord
from pictograph.resolvers.password_policy import check_new_password
from pictograph.sessions import mint_token, remember_new_token, revoke_token
from pictograph.visibility import can_view_profile

USERNAME = re.compile(r"[a-z0-9._]{3,30}")
MAX_DISPLAY_NAME = 64
MAX_BIO = 300
WRONG_CREDENTIALS = "wrong username or password"


def normalise_username(raw: str) -> str:
    return raw.strip().lower()


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise BadUserInput(
            "a username is 3 to 30 characters of a-z, 0-9, '.' and '_'", field="username"
        )


def client_address(context: Context) -> str | None:
    """The client's address: the connection's, or behind a proxy named in
    PICTOGRAPH_TRUSTED_PROXIES the one it forwarded (the app's ProxyHeadersMiddleware)."""
    client = context.connection.client if context.connection is not None else None
    return client.host if client is not None else None


def clean_text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise BadUserInput(f"{field} has at most {limit} characters", field=field)
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        raise BadUserInput(f"{field} contains control characters", field=field)
    return value


async def sign_up(
    context: Context, username: str, password: str, display_name: str | None
) -> tuple[str, UserRecord]:
    await context.resources.rate_limits.sign_up(client_address(context))
    username = normalise_username(username)
    check_username(username)
    display = clean_text(display_name or "", "displayName", MAX_DISPLAY_NAME) or username
    await check_new_password(password, username, display)
    if await User.exists(username=username):
        raise Conflict("that username is taken", field="username")
    password_hash = await context.resources.passwords.hash(password)
    try:
        # The user and their first token commit together or not at all.
        async with in_transaction():
            user = await User.create(
                username=username, display_name=display, password_hash=password_hash
            )
            token = await mint_token(user.id, context.resources.settings.token_ttl)
    except IntegrityError:
        # Lost a race with another sign-up for the same name.
        raise Conflict("that username is taken", field="username") from None
    await remember_new_token(context.redis, token, user.id, context.resources.settings.token_ttl)
    # The address the account was made from is its owner's first known one.
    await context.resources.rate_limits.logged_in(client_address(context), username)
    return token, UserRecord.from_model(user)


async def log_in(context: Context, username: str, password: str) -> tuple[str, UserRecord]:
    username = normalise_username(username)
    # Counted before anything is looked up: every attempt, whether the user exists or not.
    await context.resources.rate_limits.log_in(client_address(context), username)
    # A name no account can have is not looked up: the database refuses some (too long, NUL).
    user = await User.get_or_none(username=username) if USERNAME.fullmatch(username) else None
    # verify() runs the same hash for an unknown user, so both failures take as long.
    ok = await context.resources.passwords.verify(
        user.password_hash if user else None, password
    )
    if user is None or not ok:
        raise Unauthenticated(WRONG_CREDENTIALS)
    # Before the token: if Redis cannot note it, no token is left behind unreturned.
    await context.resources.rate_limits.logged_in(client_address(context), username)
    token = await mint_token(user.id, context.resources.settings.token_ttl)
    await remember_new_token(context.redis, token, user.id, context.resources.settings.token_ttl)
    return token, UserRecord.from_model(user)


async def log_out(context: Context) -> bool:
    await context.require_viewer_id()
    assert context.token is not None
    await revoke_token(context.redis, context.token)
    return True


async def update_profile(
    context: Context,
    display_name: str | None,
    bio: str | None,
    is_private: bool | None,
) -> UserRecord:
    viewer_id = await context.require_viewer_id()
    await context.resources.rate_limits.mutation(viewer_id)
    changes: dict[str, str] = {}
    if display_name is not None:
        changes["display_name"] = clean_text(display_name, "displayName", MAX_DISPLAY_NAME)
        if not changes["display_name"]:
            raise BadUserInput("displayName cannot be empty", field="displayName")
    if bio is not None:
        changes["bio"] = clean_text(bio, "bio", MAX_BIO)
    if changes:
        await User.filter(id=viewer_id).update(**changes)
        await ProfileCache(context.redis).forget([viewer_id])
    if is_private is not None:
        # Privacy is part of the follow graph's rules: it changes there, with its event.
        await context.graph_changes.set_privacy(viewer_id, is_private)
    context.loaders.users.clear(viewer_id)
    user = await User.get(id=viewer_id)
    return UserRecord.from_model(user)


async def user_by_username(context: Context, username: str) -> UserRecord | None:
    username = normalise_username(username)
    if not USERNAME.fullmatch(username):
        return None
    user_id = await context.loaders.user_ids_by_username.load(username)
    if user_id is None:
        return None
    return await visible_user(context, user_id)


async def visible_user(context: Context, user_id: int) -> UserRecord | None:
    """The user, unless they do not exist or have blocked the viewer."""
    viewer_id = await context.viewer_id()
    if not await can_view_profile(context.graph, viewer_id, user_id):
        return None
    return await context.loaders.users.load(user_id)


async def viewer(context: Context) -> UserRecord | None:
    viewer_id = await context.viewer_id()
    if viewer_id is None:
        return None
    return await context.loaders.users.load(viewer_id)

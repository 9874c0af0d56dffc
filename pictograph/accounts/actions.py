"""What a person does to their account: sign up, log in, log out, change their profile.
Each takes the process's Resources and plain values; the resolvers pass them on."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from pictograph import effects
from pictograph.accounts.names import (
    MAX_BIO,
    MAX_DISPLAY_NAME,
    check_username,
    clean_text,
    is_possible_username,
    normalise_username,
)
from pictograph.accounts.password_policy import check_new_password
from pictograph.accounts.sessions import mint_token, remember_new_token, revoke_token
from pictograph.errors import BadUserInput, Conflict, Unauthenticated
from pictograph.graph.changes import GraphChanges
from pictograph.models import User
from pictograph.records import UserRecord
from pictograph.resources import Resources

WRONG_CREDENTIALS = "wrong username or password"


async def sign_up(
    resources: Resources, username: str, password: str, display_name: str | None,
    client: str | None,
) -> tuple[str, UserRecord]:
    """A new account and its first token; `client` is the address it came from."""
    await resources.rate_limits.sign_up(client)
    username = normalise_username(username)
    check_username(username)
    display = clean_text(display_name or "", "displayName", MAX_DISPLAY_NAME) or username
    await check_new_password(password, username, display)
    if await User.exists(username=username):
        raise Conflict("that username is taken", field="username")
    password_hash = await resources.passwords.hash(password)
    ttl = resources.settings.token_ttl
    try:
        # The user and their first token commit together or not at all.
        async with in_transaction():
            user = await User.create(
                username=username, display_name=display, password_hash=password_hash
            )
            token = await mint_token(user.id, ttl)
    except IntegrityError:
        # Lost a race with another sign-up for the same name.
        raise Conflict("that username is taken", field="username") from None
    await remember_new_token(resources.redis, token, user.id, ttl)
    await effects.now_shown(resources, [user.id])
    # The address the account was made from is its owner's first known one.
    await resources.rate_limits.logged_in(client, username)
    return token, UserRecord.from_model(user)


async def log_in(
    resources: Resources, username: str, password: str, client: str | None
) -> tuple[str, UserRecord]:
    username = normalise_username(username)
    # Counted before anything is looked up: every attempt, whether the user exists or not.
    await resources.rate_limits.log_in(client, username)
    # A name no account can have is not looked up: the database refuses some (too long, NUL).
    user = await User.get_or_none(username=username) if is_possible_username(username) else None
    # verify() runs the same hash for an unknown user, so both failures take as long.
    ok = await resources.passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok:
        raise Unauthenticated(WRONG_CREDENTIALS)
    # Before the token: if Redis cannot note it, no token is left behind unreturned.
    await resources.rate_limits.logged_in(client, username)
    ttl = resources.settings.token_ttl
    token = await mint_token(user.id, ttl)
    await remember_new_token(resources.redis, token, user.id, ttl)
    return token, UserRecord.from_model(user)


async def log_out(resources: Resources, token: str) -> None:
    await revoke_token(resources.redis, token)


async def update_profile(
    resources: Resources, user_id: int, display_name: str | None, bio: str | None,
    is_private: bool | None,
) -> UserRecord:
    await resources.rate_limits.mutation(user_id)
    changes: dict[str, str] = {}
    if display_name is not None:
        changes["display_name"] = clean_text(display_name, "displayName", MAX_DISPLAY_NAME)
        if not changes["display_name"]:
            raise BadUserInput("displayName cannot be empty", field="displayName")
    if bio is not None:
        changes["bio"] = clean_text(bio, "bio", MAX_BIO)
    if changes:
        await User.filter(id=user_id).update(**changes)
        await effects.account_changed(resources, user_id)
    if is_private is not None:
        # Privacy is part of the follow graph's rules: it changes there, with its event.
        await GraphChanges(resources).set_privacy(user_id, is_private)
    return UserRecord.from_model(await User.get(id=user_id))

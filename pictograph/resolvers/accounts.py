"""Sign-up, log-in, log-out and profile changes (accounts/actions.py), and users by name."""

from __future__ import annotations

from pictograph.accounts import actions
from pictograph.accounts.names import is_possible_username, normalise_username
from pictograph.context import Context
from pictograph.records import UserRecord
from pictograph.visibility import can_view_profile


def client_address(context: Context) -> str | None:
    """The client's address: the connection's, or behind a proxy named in
    PICTOGRAPH_TRUSTED_PROXIES the one it forwarded (the app's ProxyHeadersMiddleware)."""
    client = context.connection.client if context.connection is not None else None
    return client.host if client is not None else None


async def sign_up(
    context: Context, username: str, password: str, display_name: str | None
) -> tuple[str, UserRecord]:
    return await actions.sign_up(context.resources, username, password, display_name,
                                 client_address(context))


async def log_in(context: Context, username: str, password: str) -> tuple[str, UserRecord]:
    return await actions.log_in(context.resources, username, password,
                                client_address(context))


async def log_out(context: Context) -> bool:
    await context.require_viewer_id()
    assert context.token is not None
    await actions.log_out(context.resources, context.token)
    return True


async def update_profile(
    context: Context, display_name: str | None, bio: str | None, is_private: bool | None,
) -> UserRecord:
    viewer_id = await context.require_viewer_id()
    record = await actions.update_profile(context.resources, viewer_id, display_name, bio,
                                          is_private)
    context.forget_reads()  # the profile (and perhaps the graph) just changed
    return record


async def user_by_username(context: Context, username: str) -> UserRecord | None:
    username = normalise_username(username)
    if not is_possible_username(username):
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

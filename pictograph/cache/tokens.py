"""Cached bearer-token lookups, so that most requests authenticate without SQL.

A cached token is "<user id>:<expiry, unix seconds>", so a socket learns when its token
lapses without asking the database; a revoked one is "revoked" until it would have
expired (or an hour, whichever comes first: the database still says revoked after that)."""

from __future__ import annotations

from redis.asyncio import Redis

from pictograph.cache import keys

REVOKED = "revoked"
MAX_TTL = 3600


async def get_token_owner(redis: Redis, token_hash: str) -> tuple[int, int] | str | None:
    """(owner id, expiry), REVOKED, or None when the cache does not know."""
    value = await redis.get(keys.auth_token(token_hash))
    if value is None or value == REVOKED:
        return value
    user_id, _, expires = value.partition(":")
    if not expires:  # written before expiries were cached: ask the database
        return None
    return int(user_id), int(expires)


async def remember_token(redis: Redis, token_hash: str, user_id: int, expires: int,
                         ttl: int) -> None:
    # NX: a lookup that read the row just before a logOut must not overwrite the
    # revocation marker that logOut wrote.
    await redis.set(keys.auth_token(token_hash), f"{user_id}:{expires}",
                    ex=max(1, min(ttl, MAX_TTL)), nx=True)


async def mark_revoked(redis: Redis, token_hash: str, ttl: int) -> None:
    await redis.set(keys.auth_token(token_hash), REVOKED, ex=max(1, min(ttl, MAX_TTL)))

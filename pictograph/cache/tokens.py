"""Cached bearer-token lookups, so that most requests authenticate without SQL."""

from __future__ import annotations

from redis.asyncio import Redis

from pictograph.cache import keys

REVOKED = "revoked"
MAX_TTL = 3600


async def get_token_owner(redis: Redis, token_hash: str) -> int | str | None:
    """The owner's id, REVOKED, or None when the cache does not know."""
    value = await redis.get(keys.auth_token(token_hash))
    if value is None or value == REVOKED:
        return value
    return int(value)


async def remember_token(redis: Redis, token_hash: str, user_id: int, ttl: int) -> None:
    # NX: a lookup that read the row just before a logOut must not overwrite the
    # revocation marker that logOut wrote.
    await redis.set(keys.auth_token(token_hash), user_id, ex=max(1, min(ttl, MAX_TTL)), nx=True)


async def mark_revoked(redis: Redis, token_hash: str, ttl: int) -> None:
    await redis.set(keys.auth_token(token_hash), REVOKED, ex=max(1, min(ttl, MAX_TTL)))

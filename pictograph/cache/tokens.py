"""Cached bearer-token lookups, so that most requests authenticate without SQL.

A cached token is "<user id>:<expiry, unix seconds>", so a socket learns when its token
lapses without asking the database; a revoked one is "revoked" until it would have
expired (or an hour, whichever comes first: the database still says revoked after that)."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from pictograph.cache.replicas import execute_replicated

REVOKED = "revoked"
MAX_TTL = 3600


async def get_token_owner(redis: Redis, key: str) -> tuple[int, int] | str | None:
    """(owner id, expiry), REVOKED, or None when the cache does not know. `key` is the
    token's keys.auth_token."""
    return token_owner(await redis.get(key))


async def get_token_owners(redis: Redis, keys: Sequence[str]
                           ) -> list[tuple[int, int] | str | None]:
    """get_token_owner for each key, in one round trip (on a cluster, one per node that
    serves their slots)."""
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        values = await pipe.execute()
    return [token_owner(value) for value in values]


async def get_token_owner_and(
    redis: Redis, key: str, others: Sequence[str]
) -> tuple[tuple[int, int] | str | None, list[str | None]]:
    """get_token_owner, and the values of `others` read in the same command: keys on
    the token's slot (its user's), so that even a cluster takes them together."""
    token, *values = await redis.mget([key, *others])
    return token_owner(token), values


def token_owner(value: str | None) -> tuple[int, int] | str | None:
    """A cached token's value read: get_token_owner's answer."""
    if value is None or value == REVOKED:
        return value
    user_id, _, expires = value.partition(":")
    if not expires:  # written before expiries were cached: ask the database
        return None
    return int(user_id), int(expires)


async def remember_token(redis: Redis, key: str, user_id: int, expires: int,
                         ttl: int) -> None:
    # NX: a lookup that read the row just before a logOut must not overwrite the
    # revocation marker that logOut wrote.
    await redis.set(key, f"{user_id}:{expires}",
                    ex=max(1, min(ttl, MAX_TTL)), nx=True)


async def mark_revoked(redis: Redis, key: str, ttl: int) -> None:
    """A fence: on a replica too before it returns, where the client waits for one
    (cache/replicas.py), since a failover that lost it would let the token in again."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(key, REVOKED, ex=max(1, min(ttl, MAX_TTL)))
        await execute_replicated(redis, pipe, [key])

"""Bearer tokens: minted at sign-up and log-in, checked on every operation.

A token is "<user id>.<256 random bits>". Naming the user costs nothing secret (ids are
public) and puts the token's cache entry on the user's Redis hash slot, so a rendered
response's one script can check the token beside the response (http/response_cache.py).
The id is a claim only: the database row decides, and a token whose row belongs to
someone else is refused. Tokens minted before they named their user keep working."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache import tokens as token_cache
from pictograph.live import publish as live
from pictograph.models import AuthToken


@dataclass(frozen=True, slots=True)
class Session:
    """Whose token it is and until when (unix seconds)."""

    user_id: int
    expires: int


_NAMED = re.compile(r"([1-9][0-9]{0,18})\.[A-Za-z0-9_-]{43}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def claimed_user_id(token: str) -> int | None:
    """The user a token names, if it has the form of one that does."""
    named = _NAMED.fullmatch(token)
    return int(named.group(1)) if named else None


def token_key(token: str) -> str:
    """The token's cache key (keys.auth_token), on its user's slot if it names one."""
    return keys.auth_token(hash_token(token), claimed_user_id(token))


async def mint_token(user_id: int, lifetime_seconds: int) -> str:
    """Call inside the transaction that creates the session's reason (sign-up, log-in)."""
    token = f"{user_id}.{secrets.token_urlsafe(32)}"  # 256 random bits
    await AuthToken.create(
        token_hash=hash_token(token),
        user_id=user_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=lifetime_seconds),
    )
    return token


async def remember_new_token(redis: Redis, token: str, user_id: int, lifetime: int) -> None:
    """Caches a token just minted (after its commit), so its first use needs no SQL."""
    expires = int(time.time()) + lifetime
    await token_cache.remember_token(redis, token_key(token), user_id, expires, lifetime)


async def resolve_session(redis: Redis, token: str) -> Session | None:
    """The token's session, or None for an unknown, expired or revoked token."""
    return await _session(redis, token, await token_cache.get_token_owner(redis,
                                                                          token_key(token)))


NOT_CACHED = "not cached"  # cached_sessions' answer for a token only the database knows


async def cached_sessions(redis: Redis, tokens: Sequence[str]
                          ) -> list[Session | str | None]:
    """What the token cache alone says of each token, all read in one round trip: its
    session, None (revoked or expired), or NOT_CACHED, for which resolve_session asks the
    database. Nothing here waits on the database, so one token's slow or failing row
    holds up no verdict on the others."""
    owners = await token_cache.get_token_owners(redis, [token_key(t) for t in tokens])
    return [NOT_CACHED if owner is None else _cached_session(owner) for owner in owners]


def _cached_session(cached: tuple[int, int] | str) -> Session | None:
    if cached == token_cache.REVOKED or not isinstance(cached, tuple):
        return None
    user_id, expires = cached
    return Session(user_id, expires) if expires > time.time() else None


async def resolve_token_reading(
    redis: Redis, token: str, keys_of: Callable[[int], Sequence[str]]
) -> tuple[int | None, list[str | None] | None]:
    """resolve_token, and the values of the keys `keys_of` names for the token's user,
    read in the same round trip as the token (keys on that user's slot). The values come
    back only when the token turned out to be that user's; otherwise (a token that names
    no user, or that is not whom it names) None, and nothing read is handed out."""
    claimed = claimed_user_id(token)
    if claimed is None:
        return await resolve_token(redis, token), None
    cached, values = await token_cache.get_token_owner_and(redis, token_key(token),
                                                           keys_of(claimed))
    session = await _session(redis, token, cached)
    if session is None:
        return None, None
    return session.user_id, values if session.user_id == claimed else None


async def _session(redis: Redis, token: str,
                   cached: tuple[int, int] | str | None) -> Session | None:
    """The session, from what the token cache said of the token (read by the caller)."""
    if cached is not None:
        return _cached_session(cached)
    token_hash, key, claimed = hash_token(token), token_key(token), claimed_user_id(token)
    now = time.time()
    row = await AuthToken.get_or_none(token_hash=token_hash).only(
        "id", "user_id", "expires_at", "revoked_at"
    )
    if row is None or row.revoked_at is not None or row.expires_at.timestamp() <= now:
        return None
    if claimed is not None and claimed != row.user_id:
        return None
    expires = int(row.expires_at.timestamp())
    await token_cache.remember_token(redis, key, row.user_id, expires,
                                     int(expires - now))
    return Session(row.user_id, expires)


async def resolve_token(redis: Redis, token: str) -> int | None:
    """The id of the token's user, or None for an unknown, expired or revoked token."""
    session = await resolve_session(redis, token)
    return session.user_id if session is not None else None


async def revoke_token(redis: Redis, token: str) -> None:
    """Revokes the token everywhere: the cache first, so that no process can go on
    granting it once this returns (a Redis that cannot take the mark fails the call,
    before anything changed); then the row; then every socket opened with it is told to
    close. Safe to call again after a failure part-way."""
    token_hash = hash_token(token)
    row = await AuthToken.get_or_none(token_hash=token_hash)
    if row is None:
        return
    now = datetime.now(UTC)
    await token_cache.mark_revoked(redis, token_key(token),
                                   int((row.expires_at - now).total_seconds()))
    if row.revoked_at is None:
        row.revoked_at = now
        await row.save(update_fields=["revoked_at"])
    await live.token_revoked(redis, token_hash)  # its sockets and subscriptions end


async def delete_expired_tokens(now: datetime | None = None) -> int:
    """Removes tokens past their expiry; a revoked token's row goes with its expiry too."""
    return await AuthToken.filter(expires_at__lte=now or datetime.now(UTC)).delete()

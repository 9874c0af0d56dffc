"""Opaque bearer tokens: minted at sign-up and log-in, checked on every request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from pictograph.cache import tokens as token_cache
from pictograph.live import publish as live
from pictograph.models import AuthToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def mint_token(user_id: int, lifetime_seconds: int) -> str:
    """Call inside the transaction that creates the session's reason (sign-up, log-in)."""
    token = secrets.token_urlsafe(32)  # 256 bits
    await AuthToken.create(
        token_hash=hash_token(token),
        user_id=user_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=lifetime_seconds),
    )
    return token


async def remember_new_token(redis: Redis, token: str, user_id: int, lifetime: int) -> None:
    """Caches a token just minted (after its commit), so its first use needs no SQL."""
    await token_cache.remember_token(redis, hash_token(token), user_id, lifetime)


async def resolve_token(redis: Redis, token: str) -> int | None:
    """The id of the token's user, or None for an unknown, expired or revoked token."""
    token_hash = hash_token(token)
    cached = await token_cache.get_token_owner(redis, token_hash)
    if cached == token_cache.REVOKED:
        return None
    if isinstance(cached, int):
        return cached
    row = await AuthToken.get_or_none(token_hash=token_hash).only(
        "id", "user_id", "expires_at", "revoked_at"
    )
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    remaining = int((row.expires_at - now).total_seconds())
    await token_cache.remember_token(redis, token_hash, row.user_id, remaining)
    return row.user_id


async def revoke_token(redis: Redis, token: str) -> None:
    token_hash = hash_token(token)
    now = datetime.now(UTC)
    row = await AuthToken.get_or_none(token_hash=token_hash)
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = now
    await row.save(update_fields=["revoked_at"])
    await token_cache.mark_revoked(
        redis, token_hash, int((row.expires_at - now).total_seconds())
    )
    await live.token_revoked(redis, token_hash)  # its open subscriptions end


async def delete_expired_tokens(now: datetime | None = None) -> int:
    """Removes tokens past their expiry; a revoked token's row goes with its expiry too."""
    return await AuthToken.filter(expires_at__lte=now or datetime.now(UTC)).delete()

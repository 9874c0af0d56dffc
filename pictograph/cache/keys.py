"""Every Redis key Pictograph uses, built in one place.

The part in braces is the Redis Cluster hash tag: keys that one operation touches
together share it, so a cluster keeps them on one shard.
"""

from __future__ import annotations


def auth_token(token_hash: str) -> str:
    return f"auth:{{{token_hash}}}"


def user_profile(user_id: int) -> str:
    return f"user:{{{user_id}}}:profile"


def worker_lock(name: str) -> str:
    return f"lock:worker:{{{name}}}"


def username(name: str) -> str:
    return f"username:{{{name}}}"

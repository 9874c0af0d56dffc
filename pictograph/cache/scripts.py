"""Lua scripts registered once per Redis client, however many caches use them.

redis-py's `register_script` hashes the script's text (SHA-1) and makes a Script object
on every call. The caches are built per request and per operation (a Context builds its
FollowGraph, HomeFeed and GraphChanges), and an open subscription keeps its operation's:
a socket held some 1.1 KiB of Script objects for the graph cache alone, and each request
hashed a dozen scripts again. A Script holds nothing but its text, digest and client, so
one per client and text serves every caller."""

from __future__ import annotations

from typing import Any

# Kept on the client itself: a Script refers to its client, so a table keyed weakly by
# client would keep every client alive through its own scripts.
_ATTRIBUTE = "_pictograph_scripts"


def script(redis: Any, text: str) -> Any:
    """`redis.register_script(text)`, made once per client (a Redis, a RedisCluster or
    the embedded FakeRedis; the cluster client records the text it may have to send)."""
    by_text: dict[str, Any] | None = getattr(redis, _ATTRIBUTE, None)
    if by_text is None:
        by_text = {}
        setattr(redis, _ATTRIBUTE, by_text)
    registered = by_text.get(text)
    if registered is None:
        registered = by_text[text] = redis.register_script(text)
    return registered

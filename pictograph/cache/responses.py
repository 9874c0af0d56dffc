"""Rendered GraphQL responses per viewer, and the versions that keep them honest.

A viewer's cached responses all carry the viewer's response version (keys.response_version)
from when they were built; a response is served only while that version is unchanged.
Everything that can change what a viewer may see moves it:
- a write to the viewer's home feed (fan-out, a follow's merge or unmerge: cache/feeds.py);
- a change to the viewer's own account or graph (effects.py, after the commit);
- a change to a user or post the viewer was shown: a reader registers with the user or
  post (keys.user_readers, keys.post_readers) *before* it reads them, and a change moves
  the version of every registered reader after it commits.

Why registration comes first: a change commits, then collects the readers. A reader that
read the old data registered before that read, so it is collected; its response is then
refused when stored (the version moved) or dropped afterwards. A reader that registered
too late read the new data.

A change that takes something away also fences first (as versioned.py does): before its
commit, the versions of the user's readers (and the user's own) become pending, under
which nothing is served or stored. Each fence carries its change's token, kept in the
viewer's set of fences until the change's own move after its commit (or FENCE_TTL): a
move ends only its own fence, so another change landing meanwhile cannot end it. If the
change's move fails, its fence stays until it expires, and until then those viewers are
answered fresh.

Every script touches one hash slot: the viewer's (token, response, version, fill lock) or
the changed user's or post's (its readers).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

from pictograph.cache import keys
from pictograph.cache.jitter import jittered_below
from pictograph.cache.versioned import FENCE_TTL, VERSION_TTL, new_version

# How long registrations outlive the longest response that relies on them. A response is
# stored at most READERS_MARGIN seconds after its recording began (a slower render is not
# stored) and lives at most its TTL; every registration is made after the recording
# began and lives TTL + READERS_MARGIN, so it is still there when the response is gone.
READERS_MARGIN = 120
# Response TTLs are spread downward by up to this much, so that responses filled together
# do not expire together and the setting stays an "at most".
RESPONSE_JITTER = 0.2
FILL_MS = 3000
# Responses one viewer can hold at once: the store script drops the first to expire past
# it, so variables or documents a client invents cannot multiply the viewer's keys.
MAX_RESPONSES_PER_VIEWER = 100

# One clock: the application's. Every script that judges an expiry gets `now` (Unix ms,
# time.time() on the server) in ARGV, as hit_body judges the MGET by the same clock; none
# calls Redis TIME, which may differ from the server's or step back. Versions are random
# (versioned.new_version), never built from a clock.

# KEYS: token, response, version, fill lock, fences (the viewer's slot).
# ARGV: viewer id, now (ms), a fresh version.
# {1, bytes}: a hit. {0}: the token is not cached as this viewer's, live: the full path
# decides. {2, version, filling}: a miss, the version to build at (read before anything
# else is) and whether this request holds the fill; a pending version is never filled.
# A missing version is made from ARGV's fresh one, pending while a fence is unexpired.
_HIT = """
local token = redis.call('GET', KEYS[1])
if not token then return {0} end
local now = tonumber(ARGV[2])
local owner, expires = string.match(token, '^(%d+):(%d+)$')
if owner ~= ARGV[1] or tonumber(expires) * 1000 <= now then return {0} end
local version = redis.call('GET', KEYS[3])
if version then
  local cached = redis.call('GET', KEYS[2])
  if cached and string.sub(cached, 1, #version + 1) == version .. '\\n' then
    return {1, string.sub(cached, #version + 2)}
  end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) > 0 then
    version = '!' .. ARGV[3]
    redis.call('SET', KEYS[3], version, 'EX', FENCE_TTL)
  else
    version = ARGV[3]
    redis.call('SET', KEYS[3], version, 'EX', VERSION_TTL)
  end
end
if string.sub(version, 1, 1) == '!' then return {2, version, 0} end
local filling = redis.call('SET', KEYS[4], '1', 'NX', 'PX', FILL_MS)
return {2, version, filling and 1 or 0}
""".replace("VERSION_TTL", str(VERSION_TTL)).replace("FILL_MS", str(FILL_MS)).replace(
    "FENCE_TTL", str(FENCE_TTL))

# KEYS: response, version, fill lock, index (the viewer's slot). ARGV: the version built
# at, bytes, ttl, now (ms), the response's digest, the viewer's response key prefix.
# The responses the trim drops are named from the prefix (keys.response): they share the
# viewer's hash tag, so every key this script touches is on the viewer's slot.
_STORE = """
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local ttl, now = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZADD', KEYS[4], now + ttl * 1000, ARGV[5])
local over = redis.call('ZCARD', KEYS[4]) - MAX_RESPONSES
if over > 0 then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[4], 0, over - 1)) do
    redis.call('DEL', ARGV[6] .. digest)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1)
end
if redis.call('TTL', KEYS[4]) < ttl then redis.call('EXPIRE', KEYS[4], ttl) end
return 1
""".replace("MAX_RESPONSES", str(MAX_RESPONSES_PER_VIEWER))

# KEYS: a user's or post's readers. ARGV: '1' to take the set (after a commit: these
# readers are moved now, later ones register anew) or '0' to leave it (a fence).
_READERS = """
local readers = redis.call('SMEMBERS', KEYS[1])
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
return readers
"""

# A viewer's response version dropped unless fenced, inside any script on the viewer's
# slot (here and cache/feeds.py): KEYS[n] is the version.
DROP_RESPONSES_LUA = """
local response_version = redis.call('GET', KEYS[{n}])
if not response_version or string.sub(response_version, 1, 1) ~= '!' then
  redis.call('DEL', KEYS[{n}])
end
"""

# KEYS: a viewer's response version, the viewer's fences. ARGV: mode, a fresh version,
# now (ms), the change's token ('' for a change that fenced nothing).
# 'fence': the change's token joins the fences (expiring FENCE_TTL from now) and the
# version becomes pending. 'move' (after a commit): ends the change's own fence (and any
# expired one), then a fresh version if no other change's fence remains, else a fresh
# pending one until the last of them expires: a change ends no other change's fence.
# 'drop': a fresh version unless fenced, for writes that are not a change's (fan-out).
_MOVE = """
local now = tonumber(ARGV[3])
if ARGV[1] == 'fence' then
  redis.call('ZADD', KEYS[2], now + FENCE_TTL * 1000, ARGV[4])
  redis.call('EXPIRE', KEYS[2], FENCE_TTL)
  redis.call('SET', KEYS[1], '!' .. ARGV[2], 'EX', FENCE_TTL)
elseif ARGV[1] == 'move' then
  if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', VERSION_TTL)
  else
    local left = math.ceil((tonumber(last[2]) - now) / 1000)
    redis.call('SET', KEYS[1], '!' .. ARGV[2], 'EX', math.max(1, left))
  end
else
""".replace("FENCE_TTL", str(FENCE_TTL)).replace("VERSION_TTL", str(VERSION_TTL)) + (
    DROP_RESPONSES_LUA.format(n=1)) + """
end
return 1
"""


def now_ms() -> int:
    """The application's clock, the one every expiry here is judged by."""
    return int(time.time() * 1000)


def readers_ttl(response_ttl: int) -> int:
    """How long a registration lives: past the end of any response relying on it."""
    return response_ttl + READERS_MARGIN


def response_lifetime(response_ttl: int, elapsed: float) -> int | None:
    """How long a response whose recording began `elapsed` seconds ago may be stored:
    at most its TTL, and only while its registrations outlive it (None: not stored)."""
    if elapsed > READERS_MARGIN:
        return None
    return jittered_below(response_ttl, RESPONSE_JITTER)


@dataclass(frozen=True, slots=True)
class Fence:
    """One change's fence: its token, and the viewers it fenced. The change's move after
    its commit ends it for them (and moves them, registered or not by then)."""

    token: str
    viewers: frozenset[int] = frozenset()

    @staticmethod
    def new() -> Fence:
        return Fence(new_version())


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one viewer's response lookup found."""

    body: bytes | None = None  # the cached bytes, on a hit
    version: str | None = None  # on a miss: the version to build at
    filling: bool = False  # on a miss: this request renders and stores it
    token_known: bool = True  # False: the token is not cached as this viewer's

    @property
    def hit(self) -> bool:
        return self.body is not None


class ResponseCache:
    """The scripts, registered once per client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._hit = redis.register_script(_HIT)
        self._store = redis.register_script(_STORE)
        self._readers = redis.register_script(_READERS)
        self._move = redis.register_script(_MOVE)

    async def lookup(self, viewer_id: int, token_key: str, digest: str) -> Lookup:
        """A hit in one round trip, and one command Redis answers without a script: an
        MGET of the token, the viewer's version and the response (all on the viewer's
        slot, so read at one instant even on a cluster), judged here as _HIT judges them.
        Anything else takes a second round trip, to _HIT itself, which makes a missing
        version and takes the fill. (Redis spent two to three times the CPU on the
        script as on the MGET, on a core it shares with the servers: bench/load.py.)
        Replies are left undecoded: the bytes go to the client as they are."""
        token, version, stored = await self.redis.execute_command(
            "MGET", token_key, keys.response_version(viewer_id),
            keys.response(viewer_id, digest), **{NEVER_DECODE: True})
        now = now_ms()
        body = hit_body(viewer_id, token, version, stored, now)
        if body is not None:
            return Lookup(body=body)
        command = ("EVALSHA", self._hit.sha, 5, token_key, keys.response(viewer_id, digest),
                   keys.response_version(viewer_id), keys.response_fill(viewer_id, digest),
                   keys.response_fences(viewer_id), viewer_id, now, new_version())
        try:
            found = await self.redis.execute_command(*command, **{NEVER_DECODE: True})
        except NoScriptError:  # a new or flushed server: load it, once
            self._hit.sha = await self.redis.script_load(self._hit.script)
            found = await self.redis.execute_command(*command[:1], self._hit.sha,
                                                     *command[2:], **{NEVER_DECODE: True})
        if found[0] == 0:
            return Lookup(token_known=False)
        if found[0] == 1:
            body = found[1]
            return Lookup(body=body.encode() if isinstance(body, str) else body)
        version = found[1].decode() if isinstance(found[1], bytes) else found[1]
        return Lookup(version=version, filling=bool(found[2]))

    async def store(self, viewer_id: int, digest: str, version: str, body: bytes,
                    ttl: int) -> bool:
        """Stores the bytes if nothing moved the viewer's version since `version` was read,
        within the viewer's MAX_RESPONSES_PER_VIEWER; releases the fill either way."""
        return bool(await self._store(
            keys=[keys.response(viewer_id, digest), keys.response_version(viewer_id),
                  keys.response_fill(viewer_id, digest), keys.response_index(viewer_id)],
            args=[version, body, ttl, now_ms(), digest, keys.response(viewer_id, "")],
        ))

    async def release(self, viewer_id: int, digest: str) -> None:
        """Gives up a fill without storing (the response had errors, or was not a query)."""
        await self.redis.delete(keys.response_fill(viewer_id, digest))

    async def fence(self, user_ids: Iterable[int] = (), post_ids: Iterable[int] = (),
                    also: Fence | None = None) -> Fence:
        """Before a commit that takes something away from viewers of these users or posts.
        The change passes the Fence back to changed() after its commit, which ends it; a
        change that fences more than once (a retried transaction) passes its first as
        `also`, so that all are one fence, ended by one move."""
        fence = also or Fence.new()
        viewers = await self._change(user_ids, post_ids, "fence", fence.token)
        return Fence(fence.token, fence.viewers | viewers)

    async def changed(self, user_ids: Iterable[int] = (), post_ids: Iterable[int] = (),
                      fence: Fence | None = None) -> None:
        """After a commit that changed these users or posts: their own responses and every
        registered reader's are stale. `fence`, the change's own, ends for its viewers."""
        await self._change(user_ids, post_ids, "move", fence.token if fence else "",
                           fence.viewers if fence else frozenset())

    async def changed_viewers(self, viewer_ids: Iterable[int]) -> None:
        """These viewers' responses are stale (their feeds changed), fences kept."""
        await self._move_versions(set(viewer_ids), "drop", "")

    async def _change(self, user_ids: Iterable[int], post_ids: Iterable[int], mode: str,
                      token: str, also: frozenset[int] = frozenset()) -> frozenset[int]:
        users, posts = sorted(set(user_ids)), sorted(set(post_ids))
        if not users and not posts and not also:
            return frozenset()
        take = "1" if mode == "move" else "0"
        # A pipeline, not one script: each readers set lives on its own slot.
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                await self._readers(keys=[keys.user_readers(user_id)], args=[take], client=pipe)
            for post_id in posts:
                await self._readers(keys=[keys.post_readers(post_id)], args=[take], client=pipe)
            found = await pipe.execute()
        viewers = set(users) | also
        for readers in found:
            viewers.update(int(reader) for reader in readers)
        await self._move_versions(viewers, mode, token)
        return frozenset(viewers)

    async def _move_versions(self, viewer_ids: set[int], mode: str, token: str) -> None:
        if not viewer_ids:
            return
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for viewer_id in sorted(viewer_ids):
                await self._move(
                    keys=[keys.response_version(viewer_id), keys.response_fences(viewer_id)],
                    args=[mode, new_version(), now, token], client=pipe)
            await pipe.execute()


def hit_body(viewer_id: int, token: bytes | None, version: bytes | None,
             stored: bytes | None, now: int) -> bytes | None:
    """The response's bytes when the MGET found a hit: the token cached as the viewer's
    and live at `now` (Unix ms, the clock _HIT is given too), and the response built at
    the viewer's current version (a pending version, "!...", is never one a response was
    stored at). Otherwise None, and _HIT decides."""
    if token is None or version is None or stored is None or version.startswith(b"!"):
        return None
    owner, _, expires = token.partition(b":")
    if owner != str(viewer_id).encode() or not expires.isdigit() or (
            int(expires) * 1000 <= now):
        return None
    if not stored.startswith(version + b"\n"):
        return None
    return stored[len(version) + 1:]


@dataclass(slots=True)
class Recording:
    """One operation rendering a response to cache: whose it is, and whether it still may
    be cached. Readers (loaders.py, feed/policy.py) register through it before they read,
    and mark it uncacheable when they read something no version guards. It notes when it
    began, before any registration: see READERS_MARGIN."""

    viewer_id: int
    ttl: int
    cacheable: bool = True
    began: float = field(default_factory=lambda: time.monotonic())

    def register(self, pipe: Pipeline, readers_keys: Sequence[str]) -> None:
        """Queues the viewer's registration with each user or post, ahead of the reads
        that follow in the same pipeline (each registration shares its slot with what it
        guards, so a cluster keeps the order too)."""
        for key in readers_keys:
            pipe.sadd(key, self.viewer_id)
            pipe.expire(key, readers_ttl(self.ttl))

    async def register_now(self, redis: Redis, readers_keys: Sequence[str]) -> None:
        if readers_keys:
            async with redis.pipeline(transaction=False) as pipe:
                self.register(pipe, readers_keys)
                await pipe.execute()

    def lifetime(self) -> int | None:
        """How long the response may be stored now (None: not at all)."""
        return response_lifetime(self.ttl, time.monotonic() - self.began)

"""Rendered GraphQL responses per viewer, and what keeps them honest.

A cached response depends on three things, each checked when it is served:
- the viewer's own response version (keys.response_version): moved by a change to the
  viewer's account or graph (their follows, requests, blocks, privacy, or anyone's
  toward them), effects.py after the commit;
- the viewer's feed version (keys.response_feed_version), for a response that read the
  home feed only: dropped by every write to that feed (a delivery, a follow's merge), so
  a new post in the feed leaves the viewer's profiles and lists cached;
- the shown epoch of every user and post the response showed (keys.user_shown,
  keys.post_shown), read before the user or post was (loaders.py, feed/policy.py) and
  recorded in the response: a change moves the one epoch, and every response that
  recorded the old one is refused when next asked for; and, for a response that showed
  a user's follower or following counts or lists, that user's follows epoch
  (keys.user_follows_shown), read with the user and recorded when those fields are
  resolved (Recording.use), which a follow, block or removal moves instead of the
  shown epoch: a celebrity's new follower ends the answers that show its counts, not
  its followers' feeds.

So a change costs the same few commands however many viewers were shown what changed:
a celebrity's post, profile edit, deletion or new follower moves its epoch, never its
readers' versions (the fan-out the hybrid feed exists to avoid).

Why an epoch is read first: a change commits, then moves the epoch. A reader that read
the old data read the epoch before it, so it recorded the epoch the change moves; its
response is refused from the move on. Epochs are random tokens, never counters, so a
flushed and re-made epoch is never one a response recorded.

A change that takes something away also fences first, before its commit: the viewer
versions and epochs it names become pending ("!..."), which no response recorded (a
render that reads one is not stored), so from the fence on nothing that shows them is
served. Each fence carries its change's token, kept in the key's set of fences until the
change's own move after its commit (or FENCE_TTL): a move ends only its own fence. If
the move fails, the fence stays until it expires; then the key is gone, and a missing
version or epoch is never one a response recorded either. Nothing here can serve an old
answer because a key is missing: it can only refuse.

Every script touches one hash slot: the viewer's (token, response, versions, fill lock)
or one user's or post's (its epoch and fences). On one node a hit reads the viewer's
keys and the epochs it expects in one MGET.

On a cluster the epochs live on their users' and posts' slots, so a hit would read them
from other nodes. Instead each process holds what it read of an epoch for EPOCH_LEASE
(EpochLeases), counted from before the read was sent, and a hit compares the response
with those: while they hold, it reads the viewer's slot only, in one MGET. What makes
that safe is the writer's side: a change that takes a user or post away from its
viewers (deletePost, going private) returns no sooner than EPOCH_LEASE after Redis
acknowledged its fences (Fence.settled, awaited by effects.after_commit), and by then
every copy read before the fence has lapsed, in every process; a copy read after it is
pending ("!..."), which no response recorded, or the new epoch, and is never kept if
pending. Durations, not clock readings, are compared across processes (each on its own
monotonic clock), so only the clocks' rates must agree. An unfollow, removal or block
does not wait: what its users lose is guarded by their own versions, on their own slots,
which every hit reads; the pair's follows epochs guard counts and lists, which may lag.
What takes nothing away (a profile edit, a new post, a follow) does not wait either: it
shows up to EPOCH_LEASE later on a cluster. Epochs a process holds no copy of are read
beside the MGET, in parallel (cluster_reads.py), and held from then.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

from pictograph.cache import cluster_reads, keys, raw
from pictograph.cache.connection import queue_reads
from pictograph.cache.jitter import jittered_below
from pictograph.cache.replicas import execute_replicated
from pictograph.cache.scripts import script
from pictograph.cache.versioned import FENCE_TTL, VERSION_TTL, new_version

# Response TTLs are spread downward by up to this much, so that responses filled together
# do not expire together and the setting stays an "at most".
RESPONSE_JITTER = 0.2
FILL_MS = 3000
# Responses one viewer can hold at once: the store script drops the first to expire past
# it, so variables or documents a client invents cannot multiply the viewer's keys.
MAX_RESPONSES_PER_VIEWER = 100
# Per process, the epoch keys last seen recorded in a response (by viewer and digest), so
# that the next hit reads them in its one MGET. A guess only: a response that recorded
# others is checked in a second round trip. Bounded: about 2 KB an entry for a feed page.
EXPECTED_EPOCHS = 20_000

# On a cluster: how long a process compares responses with an epoch it read, before it
# reads the epoch again, and so how long a revocation that fenced epochs waits before it
# returns (the module docstring). A constant, not a setting: every process must agree.
EPOCH_LEASE = 0.1
# Epochs one process holds copies of at once; the least recently read go first.
EPOCH_LEASES = 50_000

_MGET, _GET = raw.bulk("MGET"), raw.bulk("GET")

# One clock: the application's. Every script that judges an expiry gets `now` (Unix ms,
# time.time() on the server) in ARGV, as judge() judges the MGET by the same clock; none
# calls Redis TIME, which may differ from the server's or step back. Versions are random
# (versioned.new_version), never built from a clock.

# KEYS: token, version, feed version, fill lock, fences (the viewer's slot).
# ARGV: viewer id, now (ms), a fresh version, a fresh feed version.
# {0}: the token is not cached as this viewer's, live: the full path decides.
# {2, version, feed version, filling}: a miss, the versions to build at (read before
# anything else is) and whether this request holds the fill; a pending version is never
# filled. A missing version is made from ARGV's fresh one, pending while a fence is
# unexpired; a missing feed version is made fresh (feed writes never fence).
_MISS = """
local token = redis.call('GET', KEYS[1])
if not token then return {0} end
local now = tonumber(ARGV[2])
local owner, expires = string.match(token, '^(%d+):(%d+)$')
if owner ~= ARGV[1] or tonumber(expires) * 1000 <= now then return {0} end
local version = redis.call('GET', KEYS[2])
if not version then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) > 0 then
    version = '!' .. ARGV[3]
    redis.call('SET', KEYS[2], version, 'EX', FENCE_TTL)
  else
    version = ARGV[3]
    redis.call('SET', KEYS[2], version, 'EX', VERSION_TTL)
  end
end
if string.sub(version, 1, 1) == '!' then return {2, version, '', 0} end
local feed = redis.call('GET', KEYS[3])
if not feed then
  feed = ARGV[4]
  redis.call('SET', KEYS[3], feed, 'EX', VERSION_TTL)
end
local filling = redis.call('SET', KEYS[4], '1', 'NX', 'PX', FILL_MS)
return {2, version, feed, filling and 1 or 0}
""".replace("VERSION_TTL", str(VERSION_TTL)).replace("FILL_MS", str(FILL_MS)).replace(
    "FENCE_TTL", str(FENCE_TTL))

# KEYS: response, version, feed version, fill lock, index (the viewer's slot). ARGV: the
# version built at, the feed version built at ('' for a response that read no feed), the
# stored value, ttl, now (ms), the response's digest, the viewer's response key prefix.
# The responses the trim drops are named from the prefix (keys.response): they share the
# viewer's hash tag, so every key this script touches is on the viewer's slot.
_STORE = """
redis.call('DEL', KEYS[4])
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return 0 end
local ttl, now = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
redis.call('ZADD', KEYS[5], now + ttl * 1000, ARGV[6])
local over = redis.call('ZCARD', KEYS[5]) - MAX_RESPONSES
if over > 0 then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[5], 0, over - 1)) do
    redis.call('DEL', ARGV[7] .. digest)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, over - 1)
end
if redis.call('TTL', KEYS[5]) < ttl then redis.call('EXPIRE', KEYS[5], ttl) end
return 1
""".replace("MAX_RESPONSES", str(MAX_RESPONSES_PER_VIEWER))

# The pending value a version or epoch takes while fences remain (KEYS[2]), for as long
# as the last of them: KEYS[1] is set from ARGV[2], the fresh token, at `now`.
_PENDING_OR_FRESH = """
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', VERSION_TTL)
else
  local left = math.ceil((tonumber(last[2]) - now) / 1000)
  redis.call('SET', KEYS[1], '!' .. ARGV[2], 'EX', math.max(1, left))
end
""".replace("VERSION_TTL", str(VERSION_TTL))

# KEYS: a version or epoch, its fences (one slot: a viewer's, a user's or a post's).
# ARGV: mode, a fresh token, now (ms), the change's token ('' for a change that fenced
# nothing).
# 'fence': the change's token joins the fences (expiring FENCE_TTL from now) and the
# key becomes pending. 'move' (after a commit): ends the change's own fence (and any
# expired one), then a fresh token if no other change's fence remains, else a fresh
# pending one until the last of them expires: a change ends no other change's fence.
_MOVE = """
local now = tonumber(ARGV[3])
if ARGV[1] == 'fence' then
  redis.call('ZADD', KEYS[2], now + FENCE_TTL * 1000, ARGV[4])
  redis.call('EXPIRE', KEYS[2], FENCE_TTL)
  redis.call('SET', KEYS[1], '!' .. ARGV[2], 'EX', FENCE_TTL)
  return 1
end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
""".replace("FENCE_TTL", str(FENCE_TTL)) + _PENDING_OR_FRESH + """
return 1
"""

# KEYS: an epoch, its fences. ARGV: now (ms), a fresh token. Makes a missing epoch (a
# render found it missing, so recorded nothing it could be compared with), pending while
# a fence is unexpired: a fence outlives the epoch it made pending only by eviction.
_MAKE_EPOCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
""" + _PENDING_OR_FRESH + """
return 1
"""


def now_ms() -> int:
    """The application's clock, the one every expiry here is judged by."""
    return int(time.time() * 1000)


def response_lifetime(response_ttl: int) -> int:
    """How long a response may be stored: at most its TTL, spread downward."""
    return jittered_below(response_ttl, RESPONSE_JITTER)


@dataclass(frozen=True, slots=True)
class Fence:
    """One change's fence: its token, and the users, posts and users' follows it fenced.
    The change's move after its commit ends it on all of them, whatever the move names."""

    token: str
    users: frozenset[int] = frozenset()
    posts: frozenset[int] = frozenset()
    follows: frozenset[int] = frozenset()
    # time.monotonic() from which no process holds a copy of an epoch read before this
    # fence (EpochLeases); 0 where none is held (one node, or nothing taken away).
    settles_at: float = 0.0

    @staticmethod
    def new() -> Fence:
        return Fence(new_version())

    async def settled(self) -> None:
        """Returns once every copy of the fenced epochs read before the fence has lapsed:
        the change may then return, and no response it revoked is served anywhere."""
        left = self.settles_at - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


class EpochLeases:
    """One process's copies of the epochs it read on a cluster, each good for EPOCH_LEASE
    from before its read was sent. A missing or pending epoch is never held: a hit reads
    it again, and refuses."""

    def __init__(self, size: int = EPOCH_LEASES) -> None:
        self.size = size
        self._held: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def get(self, key: bytes, now: float) -> bytes | None:
        """The epoch's copy, if it holds at `now` (time.monotonic())."""
        held = self._held.get(key)
        if held is None or held[1] <= now:
            return None
        return held[0]

    def hold(self, key: bytes, value: bytes | None, sent: float) -> None:
        """Keeps `value`, read by a command sent at `sent` (time.monotonic()), or earlier."""
        if value is None or value.startswith(b"!"):
            self._held.pop(key, None)
            return
        self._held[key] = (value, sent + EPOCH_LEASE)
        self._held.move_to_end(key)
        while len(self._held) > self.size:
            self._held.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one viewer's response lookup found."""

    body: bytes | None = None  # the cached bytes, on a hit
    version: str | None = None  # on a miss: the version to build at
    filling: bool = False  # on a miss: this request renders and stores it
    token_known: bool = True  # False: the token is not cached as this viewer's
    feed_version: str = ""  # on a miss: the feed version to build at

    @property
    def hit(self) -> bool:
        return self.body is not None


@dataclass(frozen=True, slots=True)
class Cached:
    """A stored response whose viewer's versions matched: served if every epoch it
    recorded is unchanged. The keys and the epochs are each one line, space-separated in
    the same order, so a hit compares them without taking them apart."""

    body: bytes
    epoch_keys: bytes  # b"" when it recorded none
    epochs: bytes

    def keys(self) -> tuple[bytes, ...]:
        return tuple(self.epoch_keys.split())


def judge(viewer_id: int, token: bytes | None, version: bytes | None,
          feed_version: bytes | None, stored: bytes | None, now: int) -> Cached | None:
    """The stored response, when the MGET found the token cached as the viewer's and live
    at `now` (Unix ms, the clock the scripts are given too), and the response built at the
    viewer's current version (a pending version, "!...", is never one a response was
    stored at) and, if it read the feed, the current feed version. Otherwise None."""
    if token is None or version is None or stored is None or version.startswith(b"!"):
        return None
    owner, _, expires = token.partition(b":")
    if owner != str(viewer_id).encode() or not expires.isdigit() or (
            int(expires) * 1000 <= now):
        return None
    parts = stored.split(b"\n", 4)
    if len(parts) != 5 or parts[0] != version:
        return None
    if parts[1] and parts[1] != feed_version:
        return None
    return Cached(parts[4], parts[2], parts[3])


def unchanged(cached: Cached, current: Sequence[bytes | None]) -> bool:
    """Whether the epochs read now (in the order of cached.epoch_keys) are those the
    response recorded. A missing one never is."""
    return None not in current and b" ".join(current) == cached.epochs  # type: ignore[arg-type]


def stored_value(version: str, feed_version: str, epochs: dict[str, str],
                 body: bytes) -> bytes:
    """What store() keeps: the versions and epochs a hit compares, then the bytes."""
    ordered = sorted(epochs)
    return (f"{version}\n{feed_version}\n{' '.join(ordered)}\n"
            f"{' '.join(epochs[key] for key in ordered)}\n").encode() + body


class ResponseCache:
    """The scripts, registered once per client, and this process's guesses of the epochs
    each response recorded."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._miss = script(redis, _MISS)
        self._store = script(redis, _STORE)
        self._move = script(redis, _MOVE)
        self._make_epoch = script(redis, _MAKE_EPOCH)
        # A cluster refuses an MGET across slots: there the epochs are read on their own.
        self._joined = not isinstance(redis, RedisCluster)
        # (viewer, digest) -> the epoch keys' line as stored, the keys, and the MGET's
        # keys after the token's, packed (the viewer's, then the epochs).
        self._expected: OrderedDict[tuple[int, str],
                                    tuple[bytes, tuple[bytes, ...], bytes]] = OrderedDict()
        self.leases = EpochLeases()  # a cluster's only

    async def lookup(self, viewer_id: int, token_key: str, digest: str) -> Lookup:
        """A hit in one round trip, and one command Redis answers without a script: an
        MGET of the token, the viewer's versions and the response (all on the viewer's
        slot, so read at one instant even on a cluster) and, on one node, the epochs this
        process expects the response to have recorded, judged here (on a cluster those
        are read beside the MGET, in parallel). Epochs it did not expect are read in a
        second round trip: read after the request began, like the
        first, so no change that returned before it began is missed. Anything else
        takes a second round trip, to _MISS, which makes a missing version and takes
        the fill. (Redis spent two to three times the CPU on a script as on the MGET,
        on a core it shares with the servers: bench/load.py.) On one node the MGET is
        packed by hand (cache/raw.py), all but the token's key packed when the response
        was last stored or read. Replies are left undecoded: the bytes go to the client
        as they are."""
        expected = self._expected.get((viewer_id, digest))
        early: list[Any] | None = None  # the expected epochs, read beside the MGET
        if self._joined:
            tail = expected[2] if expected else self._viewer_keys(viewer_id, digest)
            count = 4 + (len(expected[1]) if expected else 0)
            replies = await raw.call(self.redis, raw.command(
                count + 1, _MGET, raw.bulk(token_key), tail))
            if expected is not None:
                early = replies[4:]
        else:
            # A cluster: the epochs live on their users' and posts' slots. Those this
            # process holds copies of are not read (EpochLeases); the rest are read in
            # parallel with the viewer's keys, one round trip's wait in all, packed by
            # hand per node (cluster_reads.py) or else the redis-py way.
            sent = time.monotonic()
            epoch_keys = expected[1] if expected else ()
            get = self.leases.get
            held = [get(key, sent) for key in epoch_keys]
            unheld = [key for key, value in zip(epoch_keys, held, strict=True)
                      if value is None] if None in held else []
            found = await cluster_reads.read_by_node(self.redis, [  # type: ignore[arg-type]
                (keys.response_version(viewer_id).encode(), raw.command(
                    5, _MGET, raw.bulk(token_key), self._viewer_keys(viewer_id, digest))),
                *((key, raw.command(2, _GET, raw.bulk(key))) for key in unheld)])
            if found is not None:
                replies, read = found[0], found[1:]
            else:
                viewer_keys = self.redis.execute_command(
                    "MGET", token_key, keys.response_version(viewer_id),
                    keys.response_feed_version(viewer_id), keys.response(viewer_id, digest),
                    **{NEVER_DECODE: True})
                if not unheld:
                    replies, read = await viewer_keys, []
                else:
                    replies, read = await asyncio.gather(
                        viewer_keys, self._read_epochs(unheld, sent))
            if expected is not None:
                fresh = dict(zip(unheld, read, strict=True))
                for key, value in fresh.items():
                    self.leases.hold(key, value, sent)
                early = [fresh[key] if value is None else value
                         for key, value in zip(epoch_keys, held, strict=True)]
        now = now_ms()
        cached = judge(viewer_id, *replies[:4], now)
        if cached is not None:
            if not cached.epoch_keys:
                return Lookup(body=cached.body)
            if expected is not None and early is not None and expected[0] == cached.epoch_keys:
                current = early
            else:
                epoch_keys = cached.keys()
                current = await self._read_epochs(epoch_keys, time.monotonic())
                self._expect(viewer_id, digest, cached.epoch_keys, epoch_keys)
            if unchanged(cached, current):
                return Lookup(body=cached.body)
        command = ("EVALSHA", self._miss.sha, 5, token_key, keys.response_version(viewer_id),
                   keys.response_feed_version(viewer_id),
                   keys.response_fill(viewer_id, digest), keys.response_fences(viewer_id),
                   viewer_id, now, new_version(), new_version())
        try:
            found = await self.redis.execute_command(*command, **{NEVER_DECODE: True})
        except NoScriptError:  # a new or flushed server: load it, once
            self._miss.sha = await self.redis.script_load(self._miss.script)
            found = await self.redis.execute_command(*command[:1], self._miss.sha,
                                                     *command[2:], **{NEVER_DECODE: True})
        if found[0] == 0:
            return Lookup(token_known=False)
        return Lookup(version=_text(found[1]), feed_version=_text(found[2]),
                      filling=bool(found[3]))

    async def _read_epochs(self, epoch_keys: Sequence[bytes], sent: float) -> list[Any]:
        """The epochs now; on a cluster held from `sent` (time.monotonic(), taken before
        this was called) as well."""
        found: list[Any] | None = None
        if not self._joined:
            found = await cluster_reads.read_by_node(
                self.redis, [(key, raw.command(2, _GET, raw.bulk(key)))  # type: ignore[arg-type]
                             for key in epoch_keys])
        if found is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                taken = queue_reads(pipe, [key.decode() for key in epoch_keys])
                values = taken(await pipe.execute())
            found = [value.encode() if isinstance(value, str) else value for value in values]
        if not self._joined:
            for key, value in zip(epoch_keys, found, strict=True):
                self.leases.hold(key, value, sent)
        return found

    @staticmethod
    def _viewer_keys(viewer_id: int, digest: str) -> bytes:
        """The MGET's keys after the token's, packed: the viewer's versions, the response."""
        return b"".join(raw.bulk(key) for key in (
            keys.response_version(viewer_id), keys.response_feed_version(viewer_id),
            keys.response(viewer_id, digest)))

    def _expect(self, viewer_id: int, digest: str, line: bytes,
                epoch_keys: tuple[bytes, ...]) -> None:
        packed = self._viewer_keys(viewer_id, digest) + b"".join(
            raw.bulk(key) for key in epoch_keys)
        self._expected[(viewer_id, digest)] = (line, epoch_keys, packed)
        self._expected.move_to_end((viewer_id, digest))
        while len(self._expected) > EXPECTED_EPOCHS:
            self._expected.popitem(last=False)

    async def store(self, viewer_id: int, digest: str, lookup: Lookup, recording: Recording,
                    body: bytes, ttl: int) -> bool:
        """Stores the bytes with the epochs the recording read, if nothing moved the
        viewer's versions since the lookup read them, within the viewer's
        MAX_RESPONSES_PER_VIEWER; releases the fill either way."""
        assert lookup.version is not None
        feed_version = lookup.feed_version if recording.reads_feed else ""
        stored = bool(await self._store(
            keys=[keys.response(viewer_id, digest), keys.response_version(viewer_id),
                  keys.response_feed_version(viewer_id),
                  keys.response_fill(viewer_id, digest), keys.response_index(viewer_id)],
            args=[lookup.version, feed_version,
                  stored_value(lookup.version, feed_version, recording.epochs, body),
                  ttl, now_ms(), digest, keys.response(viewer_id, "")],
        ))
        if stored and recording.epochs:
            epoch_keys = tuple(key.encode() for key in sorted(recording.epochs))
            self._expect(viewer_id, digest, b" ".join(epoch_keys), epoch_keys)
            if not self._joined:
                # Each was read during the render, which began after `started`.
                for key, epoch in zip(epoch_keys, sorted(recording.epochs), strict=True):
                    self.leases.hold(key, recording.epochs[epoch].encode(),
                                     recording.started)
        return stored

    async def release(self, viewer_id: int, digest: str) -> None:
        """Gives up a fill without storing (the response had errors, or was not a query)."""
        await self.redis.delete(keys.response_fill(viewer_id, digest))

    async def make_epochs(self, epoch_keys: Iterable[str]) -> None:
        """Makes the epochs a render found missing, so that the next render can record
        them (this one was not stored: it recorded nothing a hit could compare)."""
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in sorted(set(epoch_keys)):
                await self._make_epoch(keys=[key, keys.epoch_fences(key)],
                                       args=[now, new_version()], client=pipe)
            await pipe.execute()

    async def fence(self, user_ids: Iterable[int] = (), post_ids: Iterable[int] = (),
                    also: Fence | None = None, follows: Iterable[int] = (),
                    revokes: bool = True, settles: bool | None = None) -> Fence:
        """Before a commit that takes something away from viewers of these users or posts
        (or from these users, whose pair changes: `follows`). The change passes the Fence
        back to changed() after its commit, which ends it; a change that fences more than
        once (a retried transaction) passes its first as `also`, so that all are one
        fence, ended by one move. A few commands whoever was shown these users or posts.

        The change's last fence: where the client waits for replicas, it returns once a
        replica of every master it wrote to has it, and the change's fences written
        before it on the same slots (cache/replicas.py), or raises ReplicasBehind. A
        change that takes nothing away (a follow) passes `revokes=False`: no wait.

        `settles` (by default `revokes`): the change returns only once no process holds
        a copy of these users' and posts' epochs read before the fence (EpochLeases; a
        cluster's only). A change that gives (going public) may ask for it too, so that
        what it gives shows at once, as on one node."""
        first = also or Fence.new()
        fence = Fence(first.token, first.users | frozenset(user_ids),
                      first.posts | frozenset(post_ids), first.follows | frozenset(follows),
                      first.settles_at)
        await self._apply("fence", fence.users, fence.posts, fence.follows, fence.token,
                          replicated=revokes)
        if (revokes if settles is None else settles) and not self._joined and (
                user_ids or post_ids):
            # Their shown epochs, which processes may hold copies of, guard what viewers
            # lose (a deleted post, a private account's posts). A pair's follows epochs
            # guard counts and lists, which may lag; what the pair's users themselves
            # lose is guarded by their own versions, on their slots, read by every hit.
            fence = replace(fence, settles_at=time.monotonic() + EPOCH_LEASE)
        return fence

    async def changed(self, user_ids: Iterable[int] = (), post_ids: Iterable[int] = (),
                      fence: Fence | None = None, follows: Iterable[int] = ()) -> None:
        """After a commit that changed these users or posts, or a pair these users
        (`follows`) are in: their own responses and every response that showed them (or,
        for `follows`, their counts and lists) are stale. `fence`, the change's own, ends
        on all it fenced."""
        users, posts, pairs = set(user_ids), set(post_ids), set(follows)
        if fence is not None:
            users |= fence.users
            posts |= fence.posts
            pairs |= fence.follows
        await self._apply("move", users, posts, pairs, fence.token if fence else "")

    async def feeds_changed(self, viewer_ids: Iterable[int]) -> None:
        """These viewers' feed responses are stale (what their feeds merge changed); their
        other responses and their fences stay."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for viewer_id in viewer_ids:
                pipe.delete(keys.response_feed_version(viewer_id))
            await pipe.execute()

    async def _apply(self, mode: str, users: set[int], posts: set[int], follows: set[int],
                     token: str, replicated: bool = False) -> None:
        # The users' own responses (what they see may have changed), then the epochs.
        version_keys = [(keys.response_version(user_id), keys.response_fences(user_id))
                        for user_id in sorted(users | follows)]
        epoch_keys = ([keys.user_shown(user_id) for user_id in sorted(users)]
                      + [keys.user_follows_shown(user_id) for user_id in sorted(follows)]
                      + [keys.post_shown(post_id) for post_id in sorted(posts)])
        version_keys += [(key, keys.epoch_fences(key)) for key in epoch_keys]
        if not version_keys:
            return
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for version_key, fences_key in version_keys:
                await self._move(keys=[version_key, fences_key],
                                 args=[mode, new_version(), now, token], client=pipe)
            if replicated:
                await execute_replicated(self.redis, pipe, [key for key, _ in version_keys])
            else:
                # A move after the commit needs no replica: lost in a failover, it leaves
                # the fence, which refuses, until it expires.
                await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class Recording:
    """One operation rendering a response to cache: whose it is, whether it still may be
    cached, whether it read the viewer's home feed, and the epoch of every user and post
    it showed, each read before the user or post (loaders.py, feed/policy.py)."""

    viewer_id: int
    ttl: int
    cacheable: bool = True
    # Before any epoch was read for this render: a copy of one is held from here.
    started: float = field(default_factory=time.monotonic)
    reads_feed: bool = False
    epochs: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)  # epochs to make after the render
    # Epochs read before what they guard, recorded only if a field resolves from it
    # (use): a user's follows epoch, for its counts and lists.
    aside: dict[str, str | None] = field(default_factory=dict)

    def depend(self, pipe: Pipeline, epoch_keys: Sequence[str],
               aside_keys: Sequence[str] = ()) -> Callable[[list[Any]], None]:
        """Queues a read of each epoch (and each aside) ahead of the reads that follow in
        the same pipeline (each epoch shares its slot with what it guards, so a cluster
        keeps the order too); the function returned takes them out of the replies."""
        taken = queue_reads(pipe, [*epoch_keys, *aside_keys])

        def note(replies: list[Any]) -> None:
            values = taken(replies)
            self.note(epoch_keys, values[:len(epoch_keys)])
            for key, value in zip(aside_keys, values[len(epoch_keys):], strict=True):
                self.aside.setdefault(key, None if value is None else _text(value))

        return note

    async def depend_now(self, redis: Redis, epoch_keys: Sequence[str]) -> None:
        if epoch_keys:
            async with redis.pipeline(transaction=False) as pipe:
                note = self.depend(pipe, epoch_keys)
                note(await pipe.execute())

    def note(self, epoch_keys: Sequence[str], values: Sequence[str | bytes | None]) -> None:
        """Records the epochs read. A missing or pending one, or one that moved between
        two reads of this render, makes the response one nothing could check: not stored."""
        for key, value in zip(epoch_keys, values, strict=True):
            if value is None:
                self.cacheable = False
                self.missing.add(key)
                continue
            epoch = _text(value)
            if epoch.startswith("!") or self.epochs.setdefault(key, epoch) != epoch:
                self.cacheable = False

    def use(self, epoch_key: str) -> None:
        """The response shows what `epoch_key` guards, read after the epoch was read
        aside; one read without it (nothing read it first) is not stored."""
        if epoch_key not in self.aside:
            self.cacheable = False
            return
        self.note([epoch_key], [self.aside[epoch_key]])

    def lifetime(self) -> int:
        """How long the response may be stored."""
        return response_lifetime(self.ttl)

"""Home feeds, authors' recent posts and the celebrity set in Redis.

Fan-out adds to a feed whether or not it is complete; a rebuild from the database
merges into what is there and then marks it complete. So a post fanned out while a
rebuild was reading is never lost, and nothing is ever overwritten by an older read.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys, raw
from pictograph.cache.connection import is_cluster
from pictograph.cache.jitter import jittered
from pictograph.cache.packed import (
    LIBRARY,
    LUA,
    PREPEND,
    IdRange,
    pack,
    pack_newest_first,
    unpack,
)
from pictograph.cache.raw import PerUser, bulk, evalsha_head
from pictograph.cache.scripts import script
from pictograph.cache.versioned import VERSION_TTL, Versions, new_version

# Entries a home feed or an author's recent list holds; older ones come from the database.
FEED_CAP = 800
FEED_TTL = 7 * 24 * 3600
PAGE_TTL = 45  # 30 to 60 s with the jitter below
LOCK_MS = 3000

# Every list is a packed string (packed.py): ids come packed and newest first
# (pack_newest_first) from ARGV's index named in each script.

# KEYS[1]: a feed or recent list. ARGV: cap, ttl, complete ('1' marks it complete),
# then post ids.
_ADD = LUA + """
local complete = ARGV[3] == '1'
add_all(KEYS[1], ARGV, 4, tonumber(ARGV[1]), tonumber(ARGV[2]), complete and 1 or 0, complete)
return 1
"""

# Fills. A list is filled from the database by merging into what is there, so a post
# added while the fill was reading is kept. That holds only while Redis keeps what it was
# told: a Redis that comes back older, or purged (cache/trust.py), loses such an add, and
# a fill that read the database before it would then mark the list complete without it.
# So each fill carries the list's fill epoch, a random token taken before the database
# was read: a purge or a rollback takes the token too, and the late fill is refused.

# KEYS[1]: the list's fill epoch. ARGV: a fresh epoch, its ttl. The epoch, made if missing.
_FILL_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if epoch then return epoch end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return ARGV[1]
"""

# KEYS: a recent list, its fill epoch. ARGV: cap, ttl, the epoch the fill took, post ids.
# Merges and marks the list complete, unless the epoch moved.
_COMPLETE = LUA + """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
add_all(KEYS[1], ARGV, 4, tonumber(ARGV[1]), tonumber(ARGV[2]), 1, true)
return 1
"""

# KEYS[1]: a feed or recent list. ARGV: cap, ttl, post ids. A missing list stays missing.
_REMOVE = LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local drops = {}
for i = 3, #ARGV do drops[ARGV[i]] = true end
local flags, body = load(KEYS[1])
local left = without(body, drops)
if #left == #body then return 0 end
store(KEYS[1], flags, left, tonumber(ARGV[1]), tonumber(ARGV[2]), false)
return 1
"""

# The followers' shares of a fan-out, each follower's in turn: add and trim, drop the
# follower's feed version (cache/responses.py: the rendered responses that read the feed,
# and the cached first page, which is served only at the version it was built at), and
# tell the follower's live subscriptions, if the follower has any: the socket's lease
# (keys.live_connections, http/sockets.py) says so. Mastodon's `subscribed:` marker: a
# PUBLISH nobody hears still costs Redis. One id newer than the feed's newest goes in in
# place (prepend), without the rest of the library (packed.py): the common case.
# On one server a call carries 100 followers, and Redis pays the call's overhead once
# for them (6.6 us a follower against 8.6-12.9 at one call each: bench/feed.py), and the
# live message goes once per API process, naming the call's followers whose sockets it
# holds (the lease's member starts with its process's id): a process then takes one
# message per 100 followers instead of one per follower, each of which cost it a parse
# and a dispatch. A lease without a process id (a process from before) gets the message
# on the follower's own channel, as before. On a cluster each follower is on its own
# slot: one follower a call, and SPUBLISH to the follower's channel (cache/pubsub.py:
# the channel shares the follower's hash tag, so a call touches one slot). KEYS: each
# follower's feed, feed version and open sockets. ARGV: cap, ttl, message (a JSON
# object), the number of followers, the process channels' prefix ('' on a cluster),
# each follower's channel and id, then the post ids.
_PUSH_MANY = PREPEND + LIBRARY + """
local cap, ttl, message, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local by_process = ARGV[5] ~= ''
local first = 6 + 2 * n
local single = #ARGV == first
local told = {}  -- process id -> the followers its message names, in call order
local processes = {}
local function tell(i)
  -- Most followers have no socket open: for them one EXISTS, and nothing made in Lua.
  if redis.call('EXISTS', KEYS[i * 3]) == 0 then return end
  local channel, follower = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if not by_process then
    redis.call('PUBLISH', channel, message)
    return
  end
  local seen = {}
  for _, socket in ipairs(redis.call('ZRANGE', KEYS[i * 3], 0, -1)) do
    local process = string.match(socket, '^(%x+):') or ''
    if not seen[process] then
      seen[process] = true
      if process == '' then
        redis.call('PUBLISH', channel, message)
      else
        if not told[process] then told[process] = {}; processes[#processes + 1] = process end
        table.insert(told[process], follower)
      end
    end
  end
end
local function share(i)
  local feed = KEYS[i * 3 - 2]
  if not (single and prepend(feed, ARGV[first], cap)) then
    local flags, body = load(feed)
    store(feed, flags, merge(body, ARGV, first), cap, ttl, false)
  end
  redis.call('DEL', KEYS[i * 3 - 1])
  tell(i)
end
-- A follower whose share fails (a key holding something else) does not keep the rest
-- of the call from theirs; the first failure is the call's answer.
local failed = nil
for i = 1, n do
  local ok, err = pcall(share, i)
  if not ok and not failed then failed = err end
end
local body = string.sub(message, 1, -2) .. ',"viewers":['
for _, process in ipairs(processes) do
  redis.call('PUBLISH', ARGV[5] .. process, body .. table.concat(told[process], ',') .. ']}')
end
if failed then
  return redis.error_reply(type(failed) == 'table' and failed.err or tostring(failed))
end
return n
"""
_PUSH_MANY_SHARDED = _PUSH_MANY.replace("'PUBLISH'", "'SPUBLISH'")
# Followers per _PUSH_MANY call: the call's overhead spread thin, and one call short
# enough (about 0.4 ms of Redis) that other clients' commands are not held behind it.
PUSH_BATCH = 100


class PerBatch:
    """_PUSH_MANY calls, packed by hand (cache/raw.py): what every call shares packed
    once, each follower's keys and channel from PerUser's templates."""

    def __init__(self, sha: str, cap: int, message: bytes, packed_posts: Sequence[str]
                 ) -> None:
        self.sha = sha
        self._keys = PerUser(b"", [keys.home_feed, keys.response_feed_version,
                                   keys.live_connections], b"", [], b"")
        self._channel = PerUser(b"", [keys.live_viewer, str], b"", [], b"")
        self._shared = bulk(cap) + bulk(FEED_TTL) + bulk(message)
        self._prefix = bulk(keys.LIVE_PROCESS_PREFIX)
        self._posts = b"".join(bulk(post) for post in packed_posts)
        self._post_count = len(packed_posts)

    def call(self, user_ids: Sequence[int]) -> bytes:
        n = len(user_ids)
        return b"".join([
            evalsha_head(self.sha, 3 * n, 5 + 2 * n + self._post_count),
            *(self._keys.call(user_id) for user_id in user_ids),
            self._shared, bulk(n), self._prefix,
            *(self._channel.call(user_id) for user_id in user_ids),
            self._posts])

# A follow's (or an ended follow's) effect on the follower's feed, in the pair's order:
# KEYS: feed, follows-applied hash (one hash slot). ARGV: author, the follower's sequence
# number of the change, '1' to merge the ids in or '0' to take them out, cap, ttl, ids.
# Skipped if a later change of the pair was applied already, or the feed was rebuilt
# from a graph that held the change (field '*': that graph's sequence number), so an
# older decision (an unfollow's cleanup, read before a re-follow) never undoes a newer
# one. The hash keeps +seq for a merge and -seq for an unmerge. The unmerge takes all
# the author's ids out in this one script: no read sees the feed half unmerged.
_FOLLOW_WRITE = LUA + """
local seq = tonumber(ARGV[2])
local applied = math.abs(tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'))
local rebuilt = tonumber(redis.call('HGET', KEYS[2], '*') or '0')
if seq <= applied or seq <= rebuilt then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] == '1' and seq or -seq)
local cap, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[2], ttl)
if ARGV[3] == '1' then
  add_all(KEYS[1], ARGV, 6, cap, ttl, 0, false)
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  local drops = {}
  for i = 6, #ARGV do drops[ARGV[i]] = true end
  local flags, body = load(KEYS[1])
  store(KEYS[1], flags, without(body, drops), cap, ttl, false)
end
return 1
"""

# A home feed rebuilt from the database: KEYS: feed, follows-applied hash, fill epoch.
# ARGV: cap, ttl, the sequence number of the follower's graph the rebuild read, then
# (post, author) pairs, newest post first, then the fill epoch it took (refused if that
# moved: see _FILL_EPOCH). A post is left out if its author was unfollowed by a change
# newer than that graph, applied meanwhile; the rest is merged with what fan-out added
# since, the feed is marked complete, and changes the graph held are from now on skipped
# by _FOLLOW_WRITE.
_REBUILT = LUA + """
if redis.call('GET', KEYS[3]) ~= ARGV[#ARGV] then return 0 end
local cap, ttl, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local adds = {}
for i = 4, #ARGV - 1, 2 do
  local applied = tonumber(redis.call('HGET', KEYS[2], ARGV[i + 1]) or '0')
  if not (applied < 0 and -applied > floor) then adds[#adds + 1] = ARGV[i] end
end
local flags, body = load(KEYS[1])
store(KEYS[1], set_complete(flags), merge(body, adds, 1), cap, ttl, true)
if floor > tonumber(redis.call('HGET', KEYS[2], '*') or '0') then
  redis.call('HSET', KEYS[2], '*', floor)
end
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""

# KEYS: lock. ARGV: token. Only the holder releases it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class CachedPage:
    ids: list[int]
    celebrities: list[int]  # followed celebrities at build time, merged at read


def _page_at(stored: str | None, version: str | None) -> CachedPage | None:
    """The stored page if it was built at the feed version that stands now."""
    if stored is None or version is None:
        return None
    built_at, _, page = stored.partition("\n")
    if built_at != version:
        return None
    return CachedPage(**orjson.loads(page))


class FanOut:
    """One fan-out under way (FeedCache.fanning_out): _PUSH_MANY calls, packed by hand
    on one server (PerBatch), one follower each through redis-py's pipeline on a
    cluster."""

    def __init__(self, send: Callable[[Sequence[int]], Awaitable[None]]) -> None:
        self._send = send  # the followers' shares, by their user ids

    async def push(self, user_ids: Sequence[int]) -> int:
        """Sends the followers' shares; returns how many (Redis answers at the end)."""
        await self._send(user_ids)
        return len(user_ids)


class FeedCache:
    def __init__(self, redis: Redis, cap: int = FEED_CAP) -> None:
        self.redis = redis
        self.cap = cap
        self._add = script(redis, _ADD)
        self._remove = script(redis, _REMOVE)
        self._push = script(redis, _PUSH_MANY_SHARDED if is_cluster(redis) else _PUSH_MANY)
        self._follow_write = script(redis, _FOLLOW_WRITE)
        self._rebuilt = script(redis, _REBUILT)
        self._fill_epoch = script(redis, _FILL_EPOCH)
        self._version = self._fill_epoch  # the same script: the value, made if missing
        self._complete = script(redis, _COMPLETE)
        self.versions = Versions(redis)
        self._unlock = script(redis, _UNLOCK)

    async def add(self, feed_keys: Iterable[str], post_ids: Sequence[int],
                  batch: int = 1000) -> int:
        """Adds the posts to every listed feed (or recent list), pipelined in batches.
        Returns the number of lists written."""
        sent = 0
        feed_keys = list(feed_keys)
        packed = pack_newest_first(post_ids)
        for start in range(0, len(feed_keys), batch):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in feed_keys[start:start + batch]:
                    await self._add(keys=[key], args=[self.cap, FEED_TTL, "", *packed],
                                    client=pipe)
                await pipe.execute()
            sent += len(feed_keys[start:start + batch])
        return sent

    @asynccontextmanager
    async def fanning_out(self, post_ids: Sequence[int],
                          message: bytes) -> AsyncIterator[FanOut]:
        """A fan-out of the posts: FanOut.push sends a batch of followers' shares and
        returns at once; Redis's replies are read when the block ends (raw.streaming)."""
        packed = pack_newest_first(post_ids)
        if is_cluster(self.redis):
            # A cluster's followers live on many nodes: one connection cannot take
            # their calls. redis-py's cluster pipeline splits them by node instead.
            yield FanOut(self._pipelined_send(packed, message))
            return
        batch = PerBatch(self._push.sha, self.cap, message, packed)
        async with raw.streaming(self.redis, _PUSH_MANY, self._push.sha) as send:
            async def send_users(user_ids: Sequence[int]) -> None:
                await send([batch.call(user_ids[start:start + PUSH_BATCH])
                            for start in range(0, len(user_ids), PUSH_BATCH)])

            yield FanOut(send_users)

    def _pipelined_send(self, packed: Sequence[str], message: bytes
                        ) -> Callable[[Sequence[int]], Awaitable[None]]:
        async def send(user_ids: Sequence[int]) -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    await self._push(
                        keys=[keys.home_feed(user_id), keys.response_feed_version(user_id),
                              keys.live_connections(user_id)],
                        # No process channels on a cluster: the follower's own.
                        args=[self.cap, FEED_TTL, message, 1, "", keys.live_viewer(user_id),
                              user_id, *packed],
                        client=pipe)
                await pipe.execute()
        return send

    async def push(self, user_ids: Sequence[int], post_ids: Sequence[int],
                   message: bytes) -> int:
        """One batch of a fan-out, written and answered (see fanning_out)."""
        async with self.fanning_out(post_ids, message) as fan_out:
            return await fan_out.push(user_ids)

    async def fill_epoch(self, key: str) -> str:
        """The list's fill epoch: take it before reading the database to fill the list."""
        return str(await self._fill_epoch(keys=[keys.list_fill_epoch(key)],
                                          args=[secrets.token_hex(8), FEED_TTL]))

    async def complete(self, key: str, post_ids: Sequence[int], epoch: str) -> bool:
        """Merges ids read from the database, after `epoch` was taken, and marks the list
        complete; False (nothing written) if the epoch moved meanwhile."""
        return bool(await self._complete(
            keys=[key, keys.list_fill_epoch(key)],
            args=[self.cap, FEED_TTL, epoch, *pack_newest_first(post_ids)]))

    async def rebuilt(self, user_id: int, floor: int,
                      posts: Sequence[tuple[int, int]], epoch: str) -> bool:
        """Stores a home feed rebuilt from the database, read after `epoch` was taken:
        (post, author) pairs read with the user's graph at sequence number `floor` (see
        _REBUILT). False (nothing written) if the epoch moved meanwhile."""
        newest_first = sorted(dict(posts).items(), reverse=True)
        feed = keys.home_feed(user_id)
        return bool(await self._rebuilt(
            keys=[feed, keys.home_feed_follows(user_id), keys.list_fill_epoch(feed)],
            args=[self.cap, FEED_TTL, floor,
                  *(item for post, author in newest_first for item in (pack(post), author)),
                  epoch],
        ))

    async def follow_write(self, user_id: int, author_id: int, seq: int, merge: bool,
                           post_ids: Sequence[int]) -> bool:
        """Merges the author's posts into the user's feed (or takes them out) unless a
        later change of the pair got there first (see _FOLLOW_WRITE)."""
        return bool(await self._follow_write(
            keys=[keys.home_feed(user_id), keys.home_feed_follows(user_id)],
            args=[author_id, seq, "1" if merge else "0", self.cap, FEED_TTL,
                  *pack_newest_first(post_ids)],
        ))

    async def remove(self, key: str, post_ids: Sequence[int]) -> None:
        if post_ids:
            await self._remove(keys=[key], args=[self.cap, FEED_TTL,
                                                 *pack_newest_first(post_ids)])

    async def ranges(
        self, list_keys: Sequence[str], before: int | None, limit: int
    ) -> list[IdRange]:
        """Newest ids older than `before` from each list, in one round trip: each list
        whole (about 10 KB at most), decoding only the ids returned."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in list_keys:
                pipe.get(key)
            raw = await pipe.execute()
        return [unpack(value, before, limit) for value in raw]

    async def newer(self, list_keys: Sequence[str], after: int, limit: int) -> list[list[int]]:
        """Up to `limit` ids newer than `after` from each list, newest first, in one
        round trip: the newest `limit` entries, cut at `after`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in list_keys:
                pipe.get(key)
            raw = await pipe.execute()
        return [[i for i in unpack(value, limit=limit).ids if i > after] for value in raw]

    async def stored_ids(self, key: str) -> IdRange:
        """Everything a feed or recent list holds (benches and tests look inside)."""
        return unpack(await self.redis.get(key))

    # The first page, cached briefly; one rebuild at a time per user. A page is stored
    # with the feed version it was built at (keys.response_feed_version, taken before the
    # database was read) and served only while that version stands. Every write to the
    # feed drops the version, so a fan-out's delivery writes nothing for the page itself.

    @staticmethod
    def page_keys(user_id: int) -> list[str]:
        """The keys behind cached_page, on the user's slot: read with the token's
        (Context.require_viewer_id_reading), they save the page its own round trip."""
        return [keys.home_feed_page(user_id), keys.response_feed_version(user_id)]

    async def cached_page(
        self, user_id: int, read: Sequence[str | None] | None = None
    ) -> tuple[CachedPage | None, str]:
        """The cached page (or None) and the feed version to store a rebuilt one at.
        `read`: the values of page_keys, read already (with the token)."""
        if read is not None:
            stored, version = read
            page = _page_at(stored, version)
            if page is not None:  # a hit: the version is not needed
                return page, ""
            if version is not None:
                return None, version
            # No version yet: made below (read again with the page).
        page_key, version_key = self.page_keys(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(page_key)
            await self._version(keys=[version_key], args=[new_version(), VERSION_TTL],
                                client=pipe)
            stored, version = await pipe.execute()
        return _page_at(stored, version), version

    async def cache_page(self, user_id: int, page: CachedPage, version: str) -> None:
        """Stores the page unless the feed changed while it was being built."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await self.versions.set_if_version(
                pipe, keys.home_feed_page(user_id), keys.response_feed_version(user_id),
                version, version.encode() + b"\n" + orjson.dumps(
                    {"ids": page.ids, "celebrities": page.celebrities}),
                jittered(PAGE_TTL, 0.33),
            )
            await pipe.execute()

    async def drop_pages(self, user_ids: Iterable[int]) -> None:
        """The first pages, and the rendered responses that read them: both go with the
        users' feed versions (the users' other responses stay)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.delete(keys.response_feed_version(user_id))
            await pipe.execute()

    async def lock_page(self, user_id: int) -> str | None:
        token = secrets.token_hex(8)
        taken = await self.redis.set(keys.home_feed_page_lock(user_id), token, nx=True,
                                     px=LOCK_MS)
        return token if taken else None

    async def unlock_page(self, user_id: int, token: str) -> None:
        await self._unlock(keys=[keys.home_feed_page_lock(user_id)], args=[token])

    # Celebrities: sticky once in, so their older posts stay merged at read time.

    async def celebrity_ids(self) -> set[int] | None:
        members = await self.redis.smembers(keys.celebrities())
        if keys.FEED_COMPLETE not in members:
            return None
        return {int(member) for member in members if member != keys.FEED_COMPLETE}

    async def fill_celebrities(self, author_ids: Iterable[int]) -> None:
        await self.redis.sadd(keys.celebrities(), keys.FEED_COMPLETE, *author_ids)

    async def add_celebrity(self, author_id: int) -> bool:
        """True when the author was not a celebrity before: since now (celebrity_since)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.celebrities(), author_id)
            pipe.set(keys.celebrity_since(author_id), int(time.time()), nx=True, ex=FEED_TTL)
            added, _ = await pipe.execute()
        return bool(added)

    async def celebrity_since(self, author_id: int) -> int | None:
        """When the author became a celebrity (unix seconds), if that is known."""
        since = await self.redis.get(keys.celebrity_since(author_id))
        return int(since) if since else None

"""Home feeds, authors' recent posts and the celebrity set in Redis.

Fan-out adds to a feed whether or not it is complete; a rebuild from the database
merges into what is there and then marks it complete. So a post fanned out while a
rebuild was reading is never lost, and nothing is ever overwritten by an older read.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.versioned import VERSION_TTL, Versions, bump_and_drop, new_version

# Entries a home feed or an author's recent list holds; older ones come from the database.
FEED_CAP = 800
FEED_TTL = 7 * 24 * 3600
PAGE_TTL = 45  # 30 to 60 s with the jitter below
LOCK_MS = 3000

# Trims KEYS[1], a feed or recent list, to its newest `cap` ids (local `cap`) and then
# marks it trimmed; the markers (score 0) are never trimmed themselves.
_TRIM = """
local markers = redis.call('ZCOUNT', KEYS[1], 0, 0)
local count = redis.call('ZCARD', KEYS[1]) - markers
if count > cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], markers, markers + count - cap - 1)
  redis.call('ZADD', KEYS[1], 0, '^')
end
"""

# KEYS[1]: a feed or recent list. ARGV: cap, ttl, complete ('1' marks it complete),
# then post ids.
_ADD = """
local key = KEYS[1]
local cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 4, #ARGV do redis.call('ZADD', key, ARGV[i], ARGV[i]) end
if ARGV[3] == '1' then redis.call('ZADD', key, 0, '~') end
""" + _TRIM + """
if ARGV[3] == '1' or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
return 1
"""

# One follower's share of a fan-out, in one command: add, trim, drop the cached first
# page (a new generation: see versioned.py) and the feed version of the follower's
# rendered responses (cache/responses.py: only those that read the feed), and tell the
# follower's live subscriptions.
# KEYS: feed, page, generation, feed version (one hash slot). ARGV: cap, ttl, channel,
# message, a new generation and its ttl, post ids.
_PUSH = """
local key = KEYS[1]
local cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 7, #ARGV do redis.call('ZADD', key, ARGV[i], ARGV[i]) end
""" + _TRIM + """
if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
redis.call('SET', KEYS[3], ARGV[5], 'EX', tonumber(ARGV[6]))
redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[4])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# A follow's (or an ended follow's) effect on the follower's feed, in the pair's order:
# KEYS: feed, follows-applied hash (one hash slot). ARGV: author, the follower's sequence
# number of the change, '1' to merge the ids in or '0' to take them out, cap, ttl, ids.
# Skipped if a later change of the pair was applied already, or the feed was rebuilt
# from a graph that held the change (field '*': that graph's sequence number), so an
# older decision (an unfollow's cleanup, read before a re-follow) never undoes a newer
# one. The hash keeps +seq for a merge and -seq for an unmerge.
_FOLLOW_WRITE = """
local seq = tonumber(ARGV[2])
local applied = math.abs(tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'))
local rebuilt = tonumber(redis.call('HGET', KEYS[2], '*') or '0')
if seq <= applied or seq <= rebuilt then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] == '1' and seq or -seq)
local cap, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[2], ttl)
if ARGV[3] == '1' then
  for i = 6, #ARGV do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i]) end
""" + _TRIM + """
  if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ttl) end
else
  for i = 6, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 1
"""

# A home feed rebuilt from the database: KEYS: feed, follows-applied hash. ARGV: cap,
# ttl, the sequence number of the follower's graph the rebuild read, then (post, author)
# pairs. A post is left out if its author was unfollowed by a change newer than that
# graph, applied meanwhile; the feed is marked complete, and changes the graph held are
# from now on skipped by _FOLLOW_WRITE.
_REBUILT = """
local cap, ttl, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local applied = tonumber(redis.call('HGET', KEYS[2], ARGV[i + 1]) or '0')
  if not (applied < 0 and -applied > floor) then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
  end
end
redis.call('ZADD', KEYS[1], 0, '~')
""" + _TRIM + """
redis.call('EXPIRE', KEYS[1], ttl)
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
class IdRange:
    ids: list[int]  # newest first
    complete: bool  # nothing is missing above the oldest id
    trimmed: bool  # ... but entries older than the oldest id were cut at the cap


@dataclass(frozen=True, slots=True)
class CachedPage:
    ids: list[int]
    celebrities: list[int]  # followed celebrities at build time, merged at read


class FeedCache:
    def __init__(self, redis: Redis, cap: int = FEED_CAP) -> None:
        self.redis = redis
        self.cap = cap
        self._add = redis.register_script(_ADD)
        self._push = redis.register_script(_PUSH)
        self._follow_write = redis.register_script(_FOLLOW_WRITE)
        self._rebuilt = redis.register_script(_REBUILT)
        self.versions = Versions(redis)
        self._unlock = redis.register_script(_UNLOCK)

    async def add(self, feed_keys: Iterable[str], post_ids: Sequence[int],
                  batch: int = 1000) -> int:
        """Adds the posts to every listed feed (or recent list), pipelined in batches.
        Returns the number of lists written."""
        sent = 0
        feed_keys = list(feed_keys)
        for start in range(0, len(feed_keys), batch):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in feed_keys[start:start + batch]:
                    await self._add(keys=[key], args=[self.cap, FEED_TTL, "", *post_ids],
                                    client=pipe)
                await pipe.execute()
            sent += len(feed_keys[start:start + batch])
        return sent

    async def push(self, user_ids: Sequence[int], post_ids: Sequence[int],
                   message: bytes) -> int:
        """A fan-out batch: one command per follower (see _PUSH), one round trip."""
        # One new generation serves the batch: each follower's key gets it once.
        generation = new_version()
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                await self._push(
                    keys=[keys.home_feed(user_id), keys.home_feed_page(user_id),
                          keys.home_feed_page_generation(user_id),
                          keys.response_feed_version(user_id)],
                    args=[self.cap, FEED_TTL, keys.live_viewer(user_id), message,
                          generation, VERSION_TTL, *post_ids],
                    client=pipe,
                )
            await pipe.execute()
        return len(user_ids)

    async def complete(self, key: str, post_ids: Sequence[int]) -> None:
        """Merges ids read from the database and marks the list complete."""
        await self._add(keys=[key], args=[self.cap, FEED_TTL, "1", *post_ids])

    async def rebuilt(self, user_id: int, floor: int,
                      posts: Sequence[tuple[int, int]]) -> None:
        """Stores a home feed rebuilt from the database: (post, author) pairs read with
        the user's graph at sequence number `floor` (see _REBUILT)."""
        await self._rebuilt(
            keys=[keys.home_feed(user_id), keys.home_feed_follows(user_id)],
            args=[self.cap, FEED_TTL, floor, *(item for pair in posts for item in pair)],
        )

    async def follow_write(self, user_id: int, author_id: int, seq: int, merge: bool,
                           post_ids: Sequence[int]) -> bool:
        """Merges the author's posts into the user's feed (or takes them out) unless a
        later change of the pair got there first (see _FOLLOW_WRITE)."""
        return bool(await self._follow_write(
            keys=[keys.home_feed(user_id), keys.home_feed_follows(user_id)],
            args=[author_id, seq, "1" if merge else "0", self.cap, FEED_TTL, *post_ids],
        ))

    async def remove(self, key: str, post_ids: Sequence[int]) -> None:
        if post_ids:
            await self.redis.zrem(key, *post_ids)

    async def ranges(
        self, list_keys: Sequence[str], before: int | None, limit: int
    ) -> list[IdRange]:
        """Newest ids older than `before` from each list, in one round trip."""
        top = f"({before}" if before is not None else "+inf"
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in list_keys:
                pipe.zmscore(key, [keys.FEED_COMPLETE, keys.FEED_TRIMMED])
                pipe.zrevrangebyscore(key, top, "(0", start=0, num=limit)
            raw = await pipe.execute()
        return [
            IdRange([int(member) for member in raw[i + 1]], raw[i][0] is not None,
                    raw[i][1] is not None)
            for i in range(0, len(raw), 2)
        ]

    async def newer(self, list_keys: Sequence[str], after: int, limit: int) -> list[list[int]]:
        """Up to `limit` ids newer than `after` from each list, newest first, in one
        round trip (the markers, at score 0, are never among them)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in list_keys:
                pipe.zrevrangebyscore(key, "+inf", f"({after}", start=0, num=limit)
            raw = await pipe.execute()
        return [[int(member) for member in found] for found in raw]

    # The first page, cached briefly; one rebuild at a time per user.

    @staticmethod
    def page_keys(user_id: int) -> list[str]:
        """The keys behind cached_page, on the user's slot: read with the token's
        (Context.require_viewer_id_reading), they save the page its own round trip."""
        return [keys.home_feed_page(user_id), keys.home_feed_page_generation(user_id)]

    async def cached_page(
        self, user_id: int, read: Sequence[str | None] | None = None
    ) -> tuple[CachedPage | None, str]:
        """The cached page (or None) and the generation to store a rebuilt one at.
        `read`: the values of page_keys, read already (with the token)."""
        if read is not None:
            raw, generation = read
            if raw is not None:  # a hit: its generation is not needed
                return CachedPage(**orjson.loads(raw)), ""
            if generation is not None:
                return None, generation
            # No generation yet: Versions.read makes one (read again with the page).
        page_key, generation_key = self.page_keys(user_id)
        [(raw, generation)] = await self.versions.read([page_key], [generation_key])
        page = CachedPage(**orjson.loads(raw)) if raw else None
        return page, generation

    async def cache_page(self, user_id: int, page: CachedPage, generation: str) -> None:
        """Stores the page unless it went stale while it was being built."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await self.versions.set_if_version(
                pipe, keys.home_feed_page(user_id), keys.home_feed_page_generation(user_id),
                generation, orjson.dumps({"ids": page.ids, "celebrities": page.celebrities}),
                jittered(PAGE_TTL, 0.33),
            )
            await pipe.execute()

    async def drop_pages(self, user_ids: Iterable[int]) -> None:
        """The first pages, and the rendered responses that read them (by their feed
        version: the users' other responses stay)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                bump_and_drop(pipe, keys.home_feed_page(user_id),
                              keys.home_feed_page_generation(user_id))
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

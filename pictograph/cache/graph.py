"""The follow graph in Redis: read in one round trip, filled and changed by Lua scripts.

Per user: sorted sets `following`, `followers`, `requested`, `requests` (score = the
follow's id, so lists page newest first) and sets `blocking`, `blocked_by`, plus a
`graph` marker saying they are loaded. Without the marker nothing is trusted and the
caller rebuilds from the database; an empty set is a real answer only with it.

Ordering. Every change bumps `users.graph_seq` of both users inside its transaction,
under their row locks, so a user's sequence numbers are in commit order. A snapshot
is read together with the user's graph_seq in one statement, so it holds exactly the
changes numbered up to that value (its floor). After commit, a change writes its pair
with its number: ignored if the snapshot already holds it (number <= floor) or a later
change of the pair was written; and it raises `maxseq` even when the graph is not
loaded, so that a fill from an older snapshot, arriving later, is refused.

Flushes. A flush (or a Redis restarted empty) takes `maxseq` with it, so a fill that read
the database before a change, and lands after the change and a flush, would otherwise be
taken. Each fill therefore carries the user's `epoch`, a random token read before the
database: a flush takes the token too, and the late fill no longer matches.

Fences. Before a change commits, under its row locks, it marks the pair `pending` in both
graphs (and raises `maxseq`); readers do not trust a pending relation and ask the
database instead. Writing the pair after the commit clears the mark. So if Redis fails
between the commit and that write, no cached relation can grant what the change took
away: readers see the mark and go to the database until the relay writes the pair again.
If Redis cannot take the mark, the change fails before anything changed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.scripts import script
from pictograph.records import GraphSnapshot, PairState, Relation

GRAPH_TTL = 24 * 3600
# Longer than any snapshot can take between its read and its fill.
MAX_SEQUENCE_TTL = 3600
_ZSET_PARTS = ("following", "followers", "requested", "requests")
_SET_PARTS = ("blocking", "blocked_by")

# KEYS (every script): marker, six parts, applied, maxseq, pending, epoch.

# ARGV: a fresh epoch, its ttl. The user's fill epoch, created if missing.
_EPOCH = """
local epoch = redis.call('GET', KEYS[11])
if epoch then return epoch end
redis.call('SET', KEYS[11], ARGV[1], 'EX', tonumber(ARGV[2]))
return ARGV[1]
"""

# ARGV: floor, ttl, epoch (taken before the database was read), then for each of the
# six parts a count followed by that many (member, score) pairs. Refused if a change
# newer than the snapshot has tried to write (maxseq) or if the epoch moved (a flush in
# between took maxseq with it). The parts outlive the marker by a minute, so a reader
# that sees the marker never finds a part expired.
_FILL = """
if redis.call('GET', KEYS[11]) ~= ARGV[3] then return 0 end
local newest = tonumber(redis.call('GET', KEYS[9]) or '0')
if newest > tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8],
           KEYS[10])
local i = 4
for part = 1, 6 do
  local key = KEYS[part + 1]
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    if part <= 4 then
      redis.call('ZADD', key, ARGV[i + 1], ARGV[i])
    else
      redis.call('SADD', key, ARGV[i])
    end
    i = i + 2
  end
  if count > 0 then redis.call('EXPIRE', key, ttl + 60) end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('EXPIRE', KEYS[11], ttl + 3600)
return 1
"""

# ARGV[2], ARGV[3]: a change's sequence number and maxseq's ttl. Every change raises
# maxseq, loaded or not, so a fill from an older snapshot is refused.
_RAISE_MAXSEQ = """
local seq = tonumber(ARGV[2])
if seq > tonumber(redis.call('GET', KEYS[9]) or '0') then
  redis.call('SET', KEYS[9], seq, 'EX', tonumber(ARGV[3]))
end
"""

# ARGV: other user, sequence number, maxseq ttl. Before a change commits, under its row
# locks: fills from older snapshots are refused, and the cached relation to the other
# user stops being trusted (readers go to the database) until the change is written.
_FENCE = _RAISE_MAXSEQ + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pending = redis.call('HGET', KEYS[10], ARGV[1])
if not pending or tonumber(pending) < seq then
  redis.call('HSET', KEYS[10], ARGV[1], seq)
end
redis.call('EXPIRE', KEYS[10], redis.call('TTL', KEYS[1]) + 60)
return 1
"""

# ARGV: other user, sequence number, maxseq ttl, then six values: a score (or '1' for
# the sets) where the other belongs in that part, '' where not.
_APPLY_PAIR = _RAISE_MAXSEQ + """
local floor = redis.call('GET', KEYS[1])
if not floor then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[10])
  return 0
end
local other = ARGV[1]
local pending = redis.call('HGET', KEYS[10], other)
if pending and tonumber(pending) <= seq then redis.call('HDEL', KEYS[10], other) end
if seq <= tonumber(floor) then return 0 end
local applied = redis.call('HGET', KEYS[8], other)
if applied and tonumber(applied) >= seq then return 0 end
local ttl = redis.call('TTL', KEYS[1]) + 60
for part = 1, 6 do
  local key = KEYS[part + 1]
  local value = ARGV[part + 3]
  if value == '' then
    if part <= 4 then redis.call('ZREM', key, other) else redis.call('SREM', key, other) end
  else
    if part <= 4 then redis.call('ZADD', key, value, other) else redis.call('SADD', key, other) end
    redis.call('EXPIRE', key, ttl)
  end
end
redis.call('HSET', KEYS[8], other, seq)
redis.call('EXPIRE', KEYS[8], ttl)
return 1
"""

# ARGV: sequence number, maxseq ttl. Drops the graph and refuses fills from snapshots
# older than the change that could not be written.
_FORGET = """
local seq = tonumber(ARGV[1])
if seq > tonumber(redis.call('GET', KEYS[9]) or '0') then
  redis.call('SET', KEYS[9], seq, 'EX', tonumber(ARGV[2]))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8],
           KEYS[10])
return 1
"""


# ARGV: other users. Nil when the graph is not loaded or a pair is pending; otherwise one
# character per user: '0' plus 1 following, 2 followed by, 4 requested, 8 blocking,
# 16 blocked by.
_RELATIONS_OF = """
-- In slices: Lua unpacks at most a few thousand values at once.
local function each(command, key)
  local out = {}
  for i = 1, #ARGV, 1000 do
    local part = redis.call(command, key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local pending = each('HMGET', KEYS[10])
for i = 1, #ARGV do
  if pending[i] then return false end
end
local following, followers = each('ZMSCORE', KEYS[2]), each('ZMSCORE', KEYS[3])
local requested = each('ZMSCORE', KEYS[4])
local blocking, blocked_by = each('SMISMEMBER', KEYS[6]), each('SMISMEMBER', KEYS[7])
local out = {}
for i = 1, #ARGV do
  local bits = 0
  if following[i] then bits = bits + 1 end
  if followers[i] then bits = bits + 2 end
  if requested[i] then bits = bits + 4 end
  if blocking[i] == 1 then bits = bits + 8 end
  if blocked_by[i] == 1 then bits = bits + 16 end
  out[i] = string.char(48 + bits)
end
return table.concat(out)
"""
# Every Relation, indexed by the bits _RELATIONS_OF answers with.
_RELATIONS = [
    Relation(following=bool(bits & 1), followed_by=bool(bits & 2), requested=bool(bits & 4),
             blocking=bool(bits & 8), blocked_by=bool(bits & 16))
    for bits in range(32)
]


class GraphCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._epoch = script(redis, _EPOCH)
        self._fill = script(redis, _FILL)
        self._fence = script(redis, _FENCE)
        self._apply_pair = script(redis, _APPLY_PAIR)
        self._forget = script(redis, _FORGET)
        self._relations = script(redis, _RELATIONS_OF)

    async def relations(
        self, viewer_id: int, other_ids: Sequence[int]
    ) -> dict[int, Relation] | None:
        """The viewer's relation to each other user in one command, or None when the
        viewer's graph is not loaded or a change to one of these pairs is in flight
        (fenced, not yet written): then only the database can say."""
        if not other_ids:
            return {}
        # One script reads the marker and the parts at one instant (one hash slot), and
        # answers with one character per user rather than five replies of a row each.
        flags = await self._relations(keys=keys.graph_keys(viewer_id), args=other_ids)
        if flags is None:
            return None
        return {other: _RELATIONS[ord(flag) - 48]
                for other, flag in zip(other_ids, flags, strict=True)}

    async def relations_to(
        self, viewer_ids: Sequence[int], other_id: int
    ) -> list[Relation | None]:
        """Each viewer's relation to one user, as `relations` reads it (None: only the
        database can say), for many viewers in one pipeline: a live message judged for
        every subscriber of a process at once."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for viewer_id in viewer_ids:
                await self._relations(keys=keys.graph_keys(viewer_id), args=[other_id],
                                      client=pipe)
            answers = await pipe.execute()
        return [None if flags is None else _RELATIONS[ord(flags[0]) - 48]
                for flags in answers]

    async def loaded(self, user_ids: Sequence[int]) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.exists(keys.graph_loaded(user_id))
            return [bool(found) for found in await pipe.execute()]

    async def epochs(self, user_ids: Sequence[int]) -> dict[int, str]:
        """Each user's fill epoch: take it before reading the snapshots to fill."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                await self._epoch(keys=keys.graph_keys(user_id),
                                  args=[secrets.token_hex(8), GRAPH_TTL], client=pipe)
            return dict(zip(user_ids, await pipe.execute(), strict=True))

    async def fill(self, snapshots: Sequence[GraphSnapshot], epochs: Mapping[int, str]
                   ) -> list[bool]:
        """Stores snapshots read from the database after their `epochs` were taken, each
        unless a newer change has tried to write that user's graph or a flush came
        between (the epoch moved)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for snapshot in snapshots:
                args: list[str | int] = [snapshot.floor, jittered(GRAPH_TTL),
                                         epochs[snapshot.user_id]]
                for part in _ZSET_PARTS:
                    pairs = getattr(snapshot, part)
                    args.append(len(pairs))
                    for other, follow_id in pairs.items():
                        args.extend((other, follow_id))
                for part in _SET_PARTS:
                    members = getattr(snapshot, part)
                    args.append(len(members))
                    for other in members:
                        args.extend((other, 0))
                await self._fill(keys=keys.graph_keys(snapshot.user_id), args=args, client=pipe)
            return [bool(done) for done in await pipe.execute()]

    async def page(
        self, user_id: int, part: str, before: int | None, limit: int
    ) -> list[tuple[int, int]] | None:
        """(other user, follow id) pairs of one part, newest first, strictly older than
        `before`; None when the graph is not loaded."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(keys.graph_loaded(user_id))
            pipe.zrevrangebyscore(
                keys.graph_part(user_id, part),
                f"({before}" if before is not None else "+inf",
                "-inf",
                start=0,
                num=limit,
                withscores=True,
            )
            loaded, rows = await pipe.execute()
        if not loaded:
            return None
        return [(int(member), int(score)) for member, score in rows]

    async def fence(self, pair: PairState, sequences: tuple[int, int]) -> None:
        """Before a change of the pair commits (under its row locks): from now until it
        is written (apply), or the graph is rebuilt after its commit, neither user's
        cached relation to the other is trusted. Raises if Redis cannot take it, so the
        change fails before anything changed."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for owner, other, seq in ((pair.a, pair.b, sequences[0]),
                                      (pair.b, pair.a, sequences[1])):
                await self._fence(keys=keys.graph_keys(owner),
                                  args=[other, seq, MAX_SEQUENCE_TTL], client=pipe)
            await pipe.execute()

    async def apply(self, pair: PairState, sequences: tuple[int, int]) -> None:
        """Writes the pair's state into both users' graphs (where they are loaded)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for owner, other, seq, mine in (
                (pair.a, pair.b, sequences[0], True),
                (pair.b, pair.a, sequences[1], False),
            ):
                await self._apply_pair(
                    keys=keys.graph_keys(owner),
                    args=[other, seq, MAX_SEQUENCE_TTL, *_pair_values(pair, mine)],
                    client=pipe,
                )
            await pipe.execute()

    async def forget(self, sequences: Mapping[int, int]) -> None:
        """Drops users' graphs after changes numbered `sequences[user]` could not be
        written, so the next read rebuilds them from the database."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, seq in sequences.items():
                await self._forget(keys=keys.graph_keys(user_id), args=[seq, MAX_SEQUENCE_TTL],
                                   client=pipe)
            await pipe.execute()


def _pair_values(pair: PairState, mine: bool) -> list[str]:
    """The six part values for pair.a's graph (mine) or pair.b's graph."""
    if mine:
        follows, followed, requested, requests = (
            pair.a_follows_b, pair.b_follows_a, pair.a_requested_b, pair.b_requested_a
        )
        blocking, blocked_by = pair.a_blocks_b, pair.b_blocks_a
    else:
        follows, followed, requested, requests = (
            pair.b_follows_a, pair.a_follows_b, pair.b_requested_a, pair.a_requested_b
        )
        blocking, blocked_by = pair.b_blocks_a, pair.a_blocks_b
    scores = [
        "" if value is None else str(value) for value in (follows, followed, requested, requests)
    ]
    return [*scores, "1" if blocking else "", "1" if blocked_by else ""]

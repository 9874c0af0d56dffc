"""Packed id lists: a home feed or an author's recent posts as one Redis string.

A sorted set of 800 ids is a skiplist (past 128 entries) of about 100 KB; the same ids
packed fixed-width into one string take about 10 KB. The layout:

    a header of HEADER characters: '@' plus the flags (COMPLETE 1, TRIMMED 2), then the
    ring's head, the entry count and the slot count, 3 base-32 digits each;
    then the slots, WIDTH base-32 digits each: a ring whose newest entry is at the head
    slot, the next newest after it, wrapping around.

Base-32 text rather than raw bytes because our Redis client decodes replies as UTF-8
(and a value stays readable in redis-cli). Fixed width with digits in ASCII order makes
string order the ids' order.

Why a ring: a fan-out adds the newest id to 10,000 feeds, and moving a whole 9 KB value
through Lua costs Redis ten times what a sorted-set insert does (measured: ~100 us a
script instead of ~10). On the ring the newest id goes into the slot before the head with
SETRANGE, in place, and a full ring simply overwrites its oldest entry, which is the trim;
the script reads and writes a few bytes. Anything else (an id older than the newest, a
merge on follow, an unmerge, a removal, a ring that must grow) rewrites the value, sized
to what it holds with room to grow, never through APPEND or SETRANGE past the end, whose
greedy allocation would double the memory a feed holds.

Every change is one Lua script on one key (or keys of one hash tag), so add, trim,
remove, merge and unmerge stay atomic. The scripts compare ids with tonumber(digits, 32),
never with string comparison, which Redis's Lua does with strcoll (the server's locale).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# 11 base-32 digits hold 55 bits: every snowflake (53 bits, see ids.py) fits.
WIDTH = 11
COMPLETE = 1  # the list holds everything down to its oldest entry, not just what fan-out added
TRIMMED = 2  # ... and entries older than its oldest were cut at the cap: those are in the database
HEADER = 10  # flags, head, count, slots
_FLAGS = 64  # '@': the first character is _FLAGS + flags, printable either way
_NUMBER = 3  # digits of the head, the count and the slots (up to 32,767 entries)

_DIGITS = "0123456789abcdefghijklmnopqrstuv"
# Two digits at a time: packing 800 ids (a follow's backfill) stays well under a millisecond.
_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]
_LIMIT = 1 << (5 * WIDTH)


def pack(post_id: int) -> str:
    if not 0 < post_id < _LIMIT:
        raise ValueError(f"id {post_id} does not fit {WIDTH} base-32 digits")
    return (_DIGITS[post_id >> 50] + _PAIRS[(post_id >> 40) & 1023]
            + _PAIRS[(post_id >> 30) & 1023] + _PAIRS[(post_id >> 20) & 1023]
            + _PAIRS[(post_id >> 10) & 1023] + _PAIRS[post_id & 1023])


def pack_newest_first(post_ids: Iterable[int]) -> list[str]:
    """Distinct ids, newest first, packed: the order every script expects of its input."""
    return [pack(i) for i in sorted(set(post_ids), reverse=True)]


@dataclass(frozen=True, slots=True)
class IdRange:
    ids: list[int]  # newest first
    complete: bool  # nothing is missing above the oldest id
    trimmed: bool  # ... but entries older than the oldest id were cut at the cap


def unpack(value: str | None, before: int | None = None, limit: int | None = None) -> IdRange:
    """The ids of a stored list older than `before`, at most `limit` of them, decoding
    only those. A missing list (None) is neither complete nor trimmed."""
    if not value:
        return IdRange([], False, False)
    flags = ord(value[0]) - _FLAGS
    head, count, slots = (int(value[at:at + _NUMBER], 32) for at in (1, 4, 7))

    def entry(k: int) -> str:  # the k-th newest, packed
        at = HEADER + (head + k) % slots * WIDTH
        return value[at:at + WIDTH]

    start = 0
    if before is not None:
        # Entries are newest first and string order is id order: bisect for the first
        # entry older than `before`.
        bound, high = pack(before), count
        while start < high:
            middle = (start + high) // 2
            if entry(middle) >= bound:
                start = middle + 1
            else:
                high = middle
    end = count if limit is None else min(count, start + limit)
    return IdRange([int(entry(k), 32) for k in range(start, end)],
                   bool(flags & COMPLETE), bool(flags & TRIMMED))


# The scripts' shared part.
# parse: a header's flags, head, count and slots.
# load: a list's flags and entries, newest first, as one string ('' for a missing list).
# merge: entries with `adds` (a table of packed ids, distinct, newest first, from index
#   `from`) merged in, none twice. without: entries less those in the set `drops`.
# store: writes entries back as a ring from slot 0, trimmed to `cap` (setting TRIMMED
#   if it cut any), with a third more slots to grow into (at most `cap`), keeping the
#   TTL unless `refresh` (or there was none): a list lives FEED_TTL from its last
#   completion, not from its last fan-out, so an idle user's feed still expires.
# PREPEND, on its own so that a fan-out's call runs nothing else in the common case:
# prepend is the fan-out's fast path: puts one id newer than every entry in the slot
#   before the head, in place: two GETRANGEs (the header, the newest entry) and two
#   SETRANGEs (the slot, the head and count), arithmetic inline (this runs once per
#   follower of every post: a call to digits() per number cost Redis 2 us more). False
#   when it cannot (a missing list, an id not the newest, a full ring that may still
#   grow): then the caller loads, merges and stores, with LIBRARY.
PREPEND = f"local W, HEADER, FLAGS = {WIDTH}, {HEADER}, {_FLAGS}\n" + """
local function prepend(key, add, cap)
  local top = redis.call('GETRANGE', key, 0, HEADER - 1)
  if top == '' then return false end
  local sub = string.sub
  local flags, head = string.byte(top, 1) - FLAGS, tonumber(sub(top, 2, 4), 32)
  local count, slots = tonumber(sub(top, 5, 7), 32), tonumber(sub(top, 8, 10), 32)
  if count > 0 then
    local at = HEADER + head * W
    local newest = redis.call('GETRANGE', key, at, at + W - 1)
    if newest == add then return true end
    if tonumber(add, 32) < tonumber(newest, 32) then return false end
  end
  if count == slots and slots < cap then return false end
  head = (head - 1) % slots
  redis.call('SETRANGE', key, HEADER + head * W, add)
  if count < slots then
    count = count + 1
  elseif flags < 2 then
    flags = flags + 2
  end
  local D = '0123456789abcdefghijklmnopqrstuv'
  local h1, h2, h3 = math.floor(head / 1024), math.floor(head / 32) % 32, head % 32
  local c1, c2, c3 = math.floor(count / 1024), math.floor(count / 32) % 32, count % 32
  redis.call('SETRANGE', key, 0, string.char(FLAGS + flags)
    .. sub(D, h1 + 1, h1 + 1) .. sub(D, h2 + 1, h2 + 1) .. sub(D, h3 + 1, h3 + 1)
    .. sub(D, c1 + 1, c1 + 1) .. sub(D, c2 + 1, c2 + 1) .. sub(D, c3 + 1, c3 + 1))
  return true
end
"""
LIBRARY = f"local N = {_NUMBER}\n" + """
local DIGITS = '0123456789abcdefghijklmnopqrstuv'
local function digits(n)
  local out = ''
  for _ = 1, N do
    local d = n % 32
    out = string.sub(DIGITS, d + 1, d + 1) .. out
    n = (n - d) / 32
  end
  return out
end
local function header(flags, head, count, slots)
  return string.char(FLAGS + flags) .. digits(head) .. digits(count) .. digits(slots)
end
local function parse(value)
  return string.byte(value, 1) - FLAGS, tonumber(string.sub(value, 2, 1 + N), 32),
    tonumber(string.sub(value, 2 + N, 1 + 2 * N), 32),
    tonumber(string.sub(value, 2 + 2 * N, 1 + 3 * N), 32)
end
local function load(key)
  local value = redis.call('GET', key)
  if not value then return 0, '' end
  local flags, head, count, slots = parse(value)
  local ring = string.sub(value, HEADER + 1)
  if head + count <= slots then
    return flags, string.sub(ring, head * W + 1, (head + count) * W)
  end
  return flags, string.sub(ring, head * W + 1) .. string.sub(ring, 1, (head + count - slots) * W)
end
local function merge(body, adds, from)
  local out, n, i, copied = {}, #body / W, 0, 0
  for j = from, #adds do
    local add = adds[j]
    local value = tonumber(add, 32)
    local current = nil
    while i < n do
      local at = i * W + 1
      current = tonumber(string.sub(body, at, at + W - 1), 32)
      if current <= value then break end
      i = i + 1
    end
    if not (i < n and current == value) then
      out[#out + 1] = string.sub(body, copied * W + 1, i * W)
      out[#out + 1] = add
      copied = i
    end
  end
  out[#out + 1] = string.sub(body, copied * W + 1)
  return table.concat(out)
end
local function without(body, drops)
  local out, n, copied = {}, #body / W, 0
  for k = 1, n do
    local at = (k - 1) * W + 1
    if drops[string.sub(body, at, at + W - 1)] then
      out[#out + 1] = string.sub(body, copied * W + 1, (k - 1) * W)
      copied = k
    end
  end
  out[#out + 1] = string.sub(body, copied * W + 1)
  return table.concat(out)
end
local function store(key, flags, body, cap, ttl, refresh)
  if #body > cap * W then
    body = string.sub(body, 1, cap * W)
    if flags < 2 then flags = flags + 2 end
  end
  local count = #body / W
  local slots = math.min(cap, math.max(16, count + math.floor(count / 3)))
  local value = header(flags, 0, count, slots) .. body .. string.rep('-', (slots - count) * W)
  local left = redis.call('PTTL', key)
  if refresh or left < 0 then
    redis.call('SET', key, value, 'EX', ttl)
  else
    redis.call('SET', key, value, 'PX', left)
  end
end
local function set_complete(flags)
  if flags % 2 == 0 then return flags + 1 end
  return flags
end
local function add_all(key, adds, from, cap, ttl, flags_to_set, refresh)
  if from == #adds and flags_to_set == 0 and prepend(key, adds[from], cap) then return end
  local flags, body = load(key)
  if flags_to_set == 1 then flags = set_complete(flags) end
  store(key, flags, merge(body, adds, from), cap, ttl, refresh)
end
"""
LUA = PREPEND + LIBRARY

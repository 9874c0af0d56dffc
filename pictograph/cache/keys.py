"""Every Redis key Pictograph uses, built in one place.

The part in braces is the Redis Cluster hash tag: keys that one operation touches
together share it, so a cluster keeps them on one shard.
"""

from __future__ import annotations

import functools

from redis.crc import key_slot


def auth_token(token_hash: str, user_id: int | None = None) -> str:
    """A cached bearer token. A token that names its user (accounts/sessions.py) shares
    the user's hash tag, so a rendered response's script can check it."""
    if user_id is None:
        return f"auth:{{{token_hash}}}"
    return f"auth:{{{user_id}}}:{token_hash}"


def user_profile(user_id: int) -> str:
    return f"user:{{{user_id}}}:profile"


def worker_lock(name: str) -> str:
    return f"lock:worker:{{{name}}}"


def username(name: str) -> str:
    return f"username:{{{name}}}"


def user_version(user_id: int) -> str:
    """Bumped on every change to a user's profile or relations; cache fills that read
    an older version are dropped, so a slow rebuild never overwrites a newer change."""
    return f"user:{{{user_id}}}:ver"


# One user's follow graph. All share the user's hash tag, so one Lua script can read
# or change them together on a cluster.
GRAPH_PARTS = ("following", "followers", "requested", "requests", "blocking", "blocked_by")


def graph_loaded(user_id: int) -> str:
    return f"user:{{{user_id}}}:graph"


def graph_part(user_id: int, part: str) -> str:
    if part not in GRAPH_PARTS:
        raise ValueError(f"unknown graph part {part!r}")
    return f"user:{{{user_id}}}:{part}"


def graph_applied(user_id: int) -> str:
    """Per other user, the sequence number of the last change written for that pair."""
    return f"user:{{{user_id}}}:applied"


def graph_max_sequence(user_id: int) -> str:
    """The highest sequence number any change has tried to write, loaded or not."""
    return f"user:{{{user_id}}}:maxseq"


def graph_pending(user_id: int) -> str:
    """Per other user, the sequence number of a change fenced before its commit and not
    yet written: the cached relation to that user is not to be trusted until it is."""
    return f"user:{{{user_id}}}:pending"


def graph_epoch(user_id: int) -> str:
    """A random token taken before a fill reads the database; a fill is stored only if
    it is unchanged, so a fill from before a flush (which takes the token with it) is
    refused."""
    return f"user:{{{user_id}}}:epoch"


def graph_keys(user_id: int) -> list[str]:
    """Marker, the six parts, applied, max sequence, pending, epoch: the scripts' order."""
    return [
        graph_loaded(user_id),
        *(graph_part(user_id, part) for part in GRAPH_PARTS),
        graph_applied(user_id),
        graph_max_sequence(user_id),
        graph_pending(user_id),
        graph_epoch(user_id),
    ]


def event_stream(name: str) -> str:
    return f"stream:{{{name}}}"


def stream_attempts(stream: str, group: str) -> str:
    """How a group's deliveries of a stream's messages ended, per message: failures and
    outages (see workers/streams.py). Same hash tag as the stream."""
    return f"{stream}:attempts:{group}"


def post(post_id: int) -> str:
    return f"post:{{{post_id}}}"


def post_version(post_id: int) -> str:
    return f"post:{{{post_id}}}:ver"


# The celebrity set's marker: it holds every celebrity, not just those added since.
FEED_COMPLETE = "~"

# Home feeds and recent lists are packed id lists (cache/packed.py) under "v2" names.
# Version 1 kept sorted sets under feed:{id} and recent:{id}: nothing reads those any
# more, so they expire with their TTL (7 days) while a v2 feed that is missing is rebuilt
# from the database on its first read, as after a flush. A new format takes a new name.


def home_feed(user_id: int) -> str:
    return f"feed:v2:{{{user_id}}}"


def home_feed_follows(user_id: int) -> str:
    """Per author, the user's sequence number of the last follow change written into the
    feed: feed writes that depend on a pair apply in the pair's order. Renamed with the
    feed: it says what the feed holds, and a v1 one speaks of the v1 feed."""
    return f"feed:v2:{{{user_id}}}:follows"


def home_feed_page(user_id: int) -> str:
    """The merged first page of candidates, cached briefly (user_feed in the design),
    stored with the feed version (response_feed_version) it was built at and served only
    while that version stands: every feed write drops it, so a delivery writes nothing
    else for the page. (v1, validated by a generation key of its own that each delivery
    moved, is left to expire within a minute.)"""
    return f"user_feed:v2:{{{user_id}}}"


def home_feed_page_lock(user_id: int) -> str:
    return f"user_feed:{{{user_id}}}:lock"


def recent_posts(author_id: int) -> str:
    """An author's newest post ids, written once per post: backfill and celebrities."""
    return f"recent:v2:{{{author_id}}}"


def list_fill_epoch(list_key: str) -> str:
    """A home feed's or recent list's fill epoch (cache/feeds.py), on the list's slot."""
    return f"{list_key}:fill"


def celebrities() -> str:
    """Authors whose posts are merged at read time instead of fanned out."""
    return "celebrities"


def celebrity_since(author_id: int) -> str:
    """When the author joined the celebrities (unix seconds)."""
    return f"celebrity:{{{author_id}}}:since"


# Live updates (Redis pub/sub). Channels are not keys, but their names live here too.
def live_viewer(user_id: int) -> str:
    """What happens to one viewer's feed: fanned-out posts, removals, graph changes."""
    return f"live:{{{user_id}}}"


def live_author(author_id: int) -> str:
    """A celebrity's posts: one publish reaches every follower's subscription."""
    return f"live:author:{{{author_id}}}"


def live_token(token_hash: str) -> str:
    """Said once, when the token is revoked: its subscriptions end."""
    return f"live:token:{{{token_hash}}}"


# One API process's live messages on one Redis server: a fan-out's batch of followers
# becomes one message per process that holds their sockets, naming them. No hash tag: a
# cluster keeps one channel per viewer (its fan-out calls are one follower each anyway).
LIVE_PROCESS_PREFIX = "live:process:"


def live_process(process_id: str) -> str:
    """What a fan-out says to the sockets one API process holds (cache/pubsub.py)."""
    return LIVE_PROCESS_PREFIX + process_id


def live_connections(user_id: int) -> str:
    """The user's open sockets (member: the socket's id, '<process id>:<random>' since
    per-process messages, so the fan-out knows whose channel to tell; score: lease
    expiry)."""
    return f"live:conns:{{{user_id}}}"


# Rate limits. The `limits` library builds each counter's name from this prefix and
# rate_limit()'s parts: ratelimit:{LIMITER/<name>/<subject>/<amount>/<multiples>/<unit>}
# for the current window and the same with "/-1" appended for the previous one. It puts
# the braces there itself, so both windows of one counter share a hash tag.
RATE_LIMIT_PREFIX = "ratelimit"


def rate_limit(name: str, subject: str) -> tuple[str, str]:
    """Whom one counter counts: the limit's name and its subject (an IP, a user id, a
    username's digest). Neither may contain braces: they would move the hash tag."""
    if any(brace in name + subject for brace in "{}"):
        raise ValueError("rate limit names and subjects cannot contain braces")
    return name, subject


def known_log_in_address(username_digest: str, address: str) -> str:
    """Set when an address logs in to an account (or signs it up), with a TTL: logIn's
    per-username limit skips it, so guessers elsewhere cannot lock the owner out of it."""
    return f"login:known:{{{username_digest}}}:{address}"


# Rendered responses (http/response_cache.py). All of a viewer's share their hash tag with
# the viewer's token key, so one script checks the token and the versions; the epochs of
# what a response showed live on each user's or post's own slot (cache/responses.py).
def response(viewer_id: int, digest: str) -> str:
    """One rendered response of the viewer's: "<the version it was built at>\n<the feed
    version, or nothing>\n<the epochs it recorded>\n<its bytes>", a string, so that a hit
    is one MGET (cache/responses.py). (Older layouts, "resp:" as a hash of the version and
    the bytes, then "rendered:" without the feed version and epochs, are left to expire.)"""
    return f"answer:{{{viewer_id}}}:{digest}"


def response_fill(viewer_id: int, digest: str) -> str:
    """Held by the one request that renders a missing response (single flight)."""
    return f"resp:{{{viewer_id}}}:{digest}:fill"


def response_version(viewer_id: int) -> str:
    """What the viewer's cached responses were built at: moved by every change to the
    viewer's own account or graph (their follows, requests, blocks and privacy, or
    anyone's toward them). Fenced by revocations (response_fences)."""
    return f"resp:{{{viewer_id}}}:ver"


def response_feed_version(viewer_id: int) -> str:
    """What the viewer's cached responses that read their home feed were built at:
    dropped by every write to that feed (a delivery, a follow's merge), which leaves
    the viewer's other responses (profiles, lists) alone. The cached first page
    (home_feed_page) is validated by it too."""
    return f"resp:{{{viewer_id}}}:feed"


def response_index(viewer_id: int) -> str:
    """The viewer's stored responses (digests, scored by when each expires, in ms): the
    store script trims it to MAX_RESPONSES_PER_VIEWER, dropping the first to expire."""
    return f"resp:{{{viewer_id}}}:index"


def response_fences(viewer_id: int) -> str:
    """The changes fencing the viewer's responses (each change's token, scored by when the
    fence expires, in ms): the version stays pending while any of them is unexpired."""
    return f"resp:{{{viewer_id}}}:fences"


def user_shown(user_id: int) -> str:
    """The user's shown epoch: a random token moved by every change to what any response
    may show of the user (profile, counts, privacy, lists, posts). A response records the
    epochs of the users it showed, read before it read them, and is served only while
    each is unchanged: a change costs one command, whoever holds such a response."""
    return f"user:{{{user_id}}}:shown"


def user_follows_shown(user_id: int) -> str:
    """The epoch of the user's follower and following counts and lists, moved by every
    change of a pair the user is in. Apart from user_shown, because only what reads them
    records it: a celebrity's new follower leaves the feeds that show its posts cached."""
    return f"user:{{{user_id}}}:shown:follows"


def post_shown(post_id: int) -> str:
    """The post's shown epoch (as user_shown): moved when it finishes or is deleted."""
    return f"post:{{{post_id}}}:shown"


def epoch_fences(epoch_key: str) -> str:
    """The changes fencing a user's or post's shown epoch (as response_fences does a
    viewer's version): on the epoch's slot."""
    return f"{epoch_key}:fences"


def persisted_query(sha256: str) -> str:
    """A persisted query's document, by the hex SHA-256 of its text."""
    return f"pq:{{{sha256}}}"


# Trust in Redis itself (cache/trust.py). Per instance: no hash tag is shared with
# anything else. A cluster holds one of each per shard, tagged to a slot of the shard's
# (shard_tag), so that the shard's master holds its own.
def redis_trust(tag: str = "redis") -> str:
    """The epoch the database says this instance was last purged and vouched for at."""
    return f"trust:{{{tag}}}"


def redis_trust_recovery(tag: str = "redis") -> str:
    """Held by the one process that purges an untrusted instance."""
    return f"trust:{{{tag}}}:recovery"


@functools.cache
def shard_tag(slot: int) -> str:
    """A hash tag that a Redis Cluster puts on `slot` (the first "redis-N" that hashes
    there: about 16,000 tries, once per slot a process meets)."""
    number = 0
    while key_slot(f"redis-{number}".encode()) != slot:
        number += 1
    return f"redis-{number}"


# What a purge of an untrusted instance keeps: the fan-out workers' queues (streams, their
# delivery records and dead letters), persisted query documents (content-addressed: an
# old one is still right), rate-limit counters (an older count is no laxer than a flush),
# and the trust keys themselves. Everything else is a cache or a fence that may have
# rolled back, and goes, the media stream too: its jobs are the database's PROCESSING
# posts, queued again in full when the media workers find their group gone
# (workers/media.py), where a rolled-back stream would silently lack the newest.
DURABLE_PREFIXES = ("stream:{follows}", "stream:{posts}", "stream:{fanout-dead-letters}",
                    "pq:", f"{RATE_LIMIT_PREFIX}:", "trust:")

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


# The home feed. A sorted set of post ids (score = id) per user. Two markers, both at
# score 0 so ranges over real ids never see them: "~" says the list holds everything
# down to its oldest entry, not just what fan-out added; "^" says older entries were
# trimmed off at the cap, so what lies below the oldest entry must come from the database.
FEED_COMPLETE = "~"
FEED_TRIMMED = "^"


def home_feed(user_id: int) -> str:
    return f"feed:{{{user_id}}}"


def home_feed_follows(user_id: int) -> str:
    """Per author, the user's sequence number of the last follow change written into the
    feed: feed writes that depend on a pair apply in the pair's order."""
    return f"feed:{{{user_id}}}:follows"


def home_feed_page(user_id: int) -> str:
    """The merged first page of candidates, cached briefly (user_feed in the design)."""
    return f"user_feed:{{{user_id}}}"


def home_feed_page_lock(user_id: int) -> str:
    return f"user_feed:{{{user_id}}}:lock"


def home_feed_page_generation(user_id: int) -> str:
    """Bumped whenever the first page goes stale; a page built before the bump is not
    stored."""
    return f"user_feed:{{{user_id}}}:gen"


def recent_posts(author_id: int) -> str:
    """An author's newest post ids, written once per post: backfill and celebrities."""
    return f"recent:{{{author_id}}}"


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


def live_connections(user_id: int) -> str:
    """The user's open sockets (member: connection id; score: lease expiry)."""
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
# the viewer's token key, so one script checks the token, the version and reads the bytes.
def response(viewer_id: int, digest: str) -> str:
    """One rendered response of the viewer's: "<the version it was built at>\n<its
    bytes>", a string, so that a hit is one MGET (cache/responses.py). (The prefix was
    "resp:" while it was a hash of the two: those keys are left to expire.)"""
    return f"rendered:{{{viewer_id}}}:{digest}"


def response_fill(viewer_id: int, digest: str) -> str:
    """Held by the one request that renders a missing response (single flight)."""
    return f"resp:{{{viewer_id}}}:{digest}:fill"


def response_version(viewer_id: int) -> str:
    """What the viewer's cached responses were built at: moved by every change to what
    the viewer may see (their feed, their graph, anything they were shown)."""
    return f"resp:{{{viewer_id}}}:ver"


def response_index(viewer_id: int) -> str:
    """The viewer's stored responses (digests, scored by when each expires, in ms): the
    store script trims it to MAX_RESPONSES_PER_VIEWER, dropping the first to expire."""
    return f"resp:{{{viewer_id}}}:index"


def response_fences(viewer_id: int) -> str:
    """The changes fencing the viewer's responses (each change's token, scored by when the
    fence expires, in ms): the version stays pending while any of them is unexpired."""
    return f"resp:{{{viewer_id}}}:fences"


def user_readers(user_id: int) -> str:
    """Viewers whose cached responses show something of this user (registered before the
    read): a change to the user moves each one's response version."""
    return f"user:{{{user_id}}}:readers"


def post_readers(post_id: int) -> str:
    """Viewers whose cached responses show this post (registered before the read)."""
    return f"post:{{{post_id}}}:readers"


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

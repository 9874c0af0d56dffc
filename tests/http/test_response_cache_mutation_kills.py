"""The response cache's lookups, fences and bound (cache/responses.py) through
ResponseCache on the app's Redis: what issue 21's mutation run found no test asking."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from pictograph.accounts.sessions import token_key
from pictograph.cache import keys, responses
from pictograph.cache.responses import Recording, ResponseCache, judge
from pictograph.resources import Resources

VIEWER = 8001
OWNER = 8002
DOCUMENTED_BOUND = 100  # the README's "one viewer holds at most 100 answers"


@pytest.fixture
def cache(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> ResponseCache:
    # Every lookup reads the epochs: these tests move them without a fence (or delete
    # them), which a copy held on a cluster would answer for its lease
    # (tests/cache/test_epoch_leases.py tests the copies).
    monkeypatch.setattr(responses, "EPOCH_LEASE", 0.0)
    return ResponseCache(resources.redis)


def minted_form(user_id: int, secret: str) -> str:
    """A token of the form sessions.mint_token gives, whose key is on its user's slot
    (as the viewer's other keys: a cluster refuses a lookup across slots)."""
    return f"{user_id}.{secret:x<43}"


async def signed_in(resources: Resources, viewer_id: int = VIEWER) -> str:
    """The viewer's token cached as the full path caches it (owner:expiry): its key."""
    key = token_key(minted_form(viewer_id, "secret"))
    await resources.redis.set(key, f"{viewer_id}:{int(time.time()) + 600}")
    return key


async def stored_at_current_version(cache: ResponseCache, token: str, digest: str,
                                    body: bytes = b"{}") -> None:
    lookup = await cache.lookup(VIEWER, token, digest)
    assert lookup.filling and lookup.version is not None, lookup
    assert await cache.store(VIEWER, digest, lookup, Recording(VIEWER, 60), body, 60)


def test_a_token_is_expired_from_its_expirys_first_millisecond() -> None:
    expires = int(time.time()) + 60
    token = f"{VIEWER}:{expires}".encode()
    found = judge(VIEWER, token, b"v1", None, b"v1\n\n\n\n{}", expires * 1000 - 1)
    assert found is not None and found.body == b"{}"
    assert judge(VIEWER, token, b"v1", None, b"v1\n\n\n\n{}", expires * 1000) is None


def test_a_hit_is_the_bytes_after_the_version_whatever_its_length() -> None:
    later = f"{int(time.time()) + 60}".encode()
    now = int(time.time() * 1000)
    for version in (b"v", b"v1", b"v12", b"v123"):
        stored = version + b"\n\n\n\n" + b'{"data": 1}'
        found = judge(VIEWER, str(VIEWER).encode() + b":" + later, version, None, stored, now)
        assert found is not None and found.body == b'{"data": 1}', version


def test_a_token_of_a_smaller_id_is_not_the_viewers() -> None:
    later = f"{int(time.time()) + 60}".encode()
    now = int(time.time() * 1000)
    for owner in (b"800", b"8000", b"1", b"80011", b"9"):
        assert judge(VIEWER, owner + b":" + later, b"v1", None, b"v1\n\n\n\n{}",
                     now) is None, owner


async def test_a_miss_is_filled_by_one_request_at_the_viewers_current_version(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    first = await cache.lookup(VIEWER, token, "d")
    assert (first.hit, first.filling, first.token_known) == (False, True, True)
    assert first.version == await resources.redis.get(keys.response_version(VIEWER))
    second = await cache.lookup(VIEWER, token, "d")  # the fill is the first request's
    assert (second.hit, second.filling, second.version) == (False, False, first.version)
    assert await cache.store(VIEWER, "d", first, Recording(VIEWER, 60), b'{"data": 1}', 60)
    assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": 1}'


async def test_a_token_not_cached_as_the_viewers_takes_nothing(
    resources: Resources, cache: ResponseCache,
) -> None:
    unknown = await cache.lookup(VIEWER, token_key(minted_form(VIEWER, "unknown")), "d")
    assert (unknown.hit, unknown.filling, unknown.token_known, unknown.version) == (
        False, False, False, None)


async def test_a_response_whose_epochs_this_process_did_not_expect_is_still_judged(
    resources: Resources, cache: ResponseCache,
) -> None:
    """Another process stored it (this one expects no epochs): the epochs it recorded are
    read in a second round trip and compared all the same."""
    token = await signed_in(resources)
    recording = Recording(VIEWER, 60)
    await recording.depend_now(resources.redis, [keys.user_shown(OWNER)])
    await cache.make_epochs(recording.missing)
    recording = Recording(VIEWER, 60)
    await recording.depend_now(resources.redis, [keys.user_shown(OWNER)])
    assert recording.cacheable and not recording.missing
    lookup = await cache.lookup(VIEWER, token, "d")
    assert await cache.store(VIEWER, "d", lookup, recording, b'{"data": 2}', 60)
    elsewhere = ResponseCache(resources.redis)
    assert (await elsewhere.lookup(VIEWER, token, "d")).body == b'{"data": 2}'
    await cache.changed([OWNER])
    assert not (await ResponseCache(resources.redis).lookup(VIEWER, token, "d")).hit
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_a_redis_that_lost_its_scripts_still_answers_lookups(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    await cache.lookup(VIEWER, token, "d")  # the script loaded once
    # As after a restart or SCRIPT FLUSH, without flushing a Redis others share.
    cache._miss.sha = "0" * 40
    again = await cache.lookup(VIEWER, token, "e")
    assert again.filling and again.version == await resources.redis.get(
        keys.response_version(VIEWER))


async def test_one_viewer_keeps_the_documented_100_and_the_first_to_expire_goes(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    lookup = await cache.lookup(VIEWER, token, "d0")
    assert lookup.version is not None and lookup.filling
    # The first stored expires last; the second, first.
    ttls = [60, 1] + [30] * (DOCUMENTED_BOUND - 1)
    for n, ttl in enumerate(ttls):
        assert await cache.store(VIEWER, f"d{n}", lookup, Recording(VIEWER, 60), b"{}", ttl)
    kept = [n for n in range(len(ttls))
            if await resources.redis.exists(keys.response(VIEWER, f"d{n}"))]
    assert len(kept) == DOCUMENTED_BOUND
    assert 1 not in kept and 0 in kept
    assert (await cache.lookup(VIEWER, token, "d0")).body == b"{}"


async def recording_of(resources: Resources, cache: ResponseCache, users: Sequence[int] = (),
                       posts: Sequence[int] = (), reads_feed: bool = False) -> Recording:
    """A render's recording that read these users' and posts' epochs (made if missing)."""
    epoch_keys = [keys.user_shown(u) for u in users] + [keys.post_shown(p) for p in posts]
    recording = Recording(VIEWER, 60, reads_feed=reads_feed)
    await recording.depend_now(resources.redis, epoch_keys)
    if recording.missing:
        await cache.make_epochs(recording.missing)
        recording = Recording(VIEWER, 60, reads_feed=reads_feed)
        await recording.depend_now(resources.redis, epoch_keys)
    return recording


async def stored_showing(resources: Resources, cache: ResponseCache, token: str,
                         digest: str, users: Sequence[int] = (), posts: Sequence[int] = (),
                         reads_feed: bool = False) -> None:
    lookup = await cache.lookup(VIEWER, token, digest)
    assert lookup.filling, lookup
    recording = await recording_of(resources, cache, users, posts, reads_feed)
    assert recording.cacheable
    assert await cache.store(VIEWER, digest, lookup, recording, b"{}", 60)
    assert (await cache.lookup(VIEWER, token, digest)).hit


@pytest.mark.parametrize("fences", [1, 2])  # 2: a retried transaction fences again
async def test_a_changes_move_ends_its_fence_for_all_it_fenced_after_another_change(
    resources: Resources, cache: ResponseCache, fences: int
) -> None:
    """The viewer was shown the owner; the change fences the owner. Another change to the
    owner moves meanwhile: the change's own move must still end its fence, after which
    the owner's own answers and answers showing the owner are cached again."""
    token = await signed_in(resources)
    owner_token = await signed_in(resources, OWNER)
    await stored_showing(resources, cache, token, "d", [OWNER])
    fence = None
    for _ in range(fences):
        fence = await cache.fence([OWNER], also=fence)
    assert not (await cache.lookup(VIEWER, token, "d")).hit  # from the fence on
    await cache.changed([OWNER])  # another change: its move ends no fence of this one
    assert not (await cache.lookup(OWNER, owner_token, "d")).filling  # fenced
    pending = Recording(VIEWER, 60)
    await pending.depend_now(resources.redis, [keys.user_shown(OWNER)])
    assert not pending.cacheable  # a render under the fence is not stored
    await cache.changed([OWNER], fence=fence)
    lookup = await cache.lookup(OWNER, owner_token, "e")
    assert lookup.filling and not (lookup.version or "!").startswith("!")
    assert (await recording_of(resources, cache, [OWNER])).cacheable


async def test_a_change_ends_only_the_answers_that_recorded_what_it_names(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    await stored_showing(resources, cache, token, "owner", [OWNER])
    await stored_showing(resources, cache, token, "nothing")
    await cache.changed([OWNER + 1], [9001])
    assert (await cache.lookup(VIEWER, token, "owner")).hit
    await cache.changed([OWNER])
    assert not (await cache.lookup(VIEWER, token, "owner")).hit
    # An answer that shows nothing of the owner outlives the owner's changes.
    assert (await cache.lookup(VIEWER, token, "nothing")).body == b"{}"


async def test_a_change_that_changed_nothing_still_ends_its_own_fence(
    resources: Resources, cache: ResponseCache,
) -> None:
    """A change fenced, then committed nothing to move (its events came to nothing):
    its move names no user or post, and what it fenced is cached again at once."""
    owner_token = await signed_in(resources, OWNER)
    fence = await cache.fence([OWNER], [9001])
    assert not (await cache.lookup(OWNER, owner_token, "d")).filling
    await cache.changed((), (), fence)
    assert (await cache.lookup(OWNER, owner_token, "e")).filling
    assert (await recording_of(resources, cache, [OWNER], [9001])).cacheable


async def test_a_change_to_a_post_alone_ends_the_answers_that_showed_it(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    await stored_showing(resources, cache, token, "d", posts=[9001])
    await cache.changed((), [9001])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_a_missing_epoch_or_feed_version_is_never_a_hit(
    resources: Resources, cache: ResponseCache,
) -> None:
    """A key lost (a purge, an expiry) refuses: a remade one is a new random token."""
    token = await signed_in(resources)
    await stored_showing(resources, cache, token, "d", [OWNER])
    await stored_showing(resources, cache, token, "feed", reads_feed=True)
    await resources.redis.delete(keys.user_shown(OWNER), keys.response_feed_version(VIEWER))
    assert not (await cache.lookup(VIEWER, token, "d")).hit
    assert not (await cache.lookup(VIEWER, token, "feed")).hit
    await cache.make_epochs([keys.user_shown(OWNER)])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_a_feed_change_drops_the_answers_that_read_the_feed_and_no_fence(
    resources: Resources, cache: ResponseCache,
) -> None:
    """feeds_changed (a delivery, an author the viewer follows became a celebrity): the
    viewer's feed answers go, their profiles and lists stay, and a fence stays."""
    token = await signed_in(resources)
    await stored_showing(resources, cache, token, "feed", [OWNER], reads_feed=True)
    await stored_showing(resources, cache, token, "profile", [OWNER])
    await cache.feeds_changed([VIEWER])
    assert not (await cache.lookup(VIEWER, token, "feed")).hit
    assert (await cache.lookup(VIEWER, token, "profile")).hit
    fence = await cache.fence([VIEWER])
    await cache.feeds_changed([VIEWER])
    assert not (await cache.lookup(VIEWER, token, "e")).filling  # still fenced
    await cache.changed([VIEWER], fence=fence)
    assert (await cache.lookup(VIEWER, token, "f")).filling


# What a render records (Recording), from the fresh mutation run after issue 22: a render
# that stored an answer without an epoch it showed would be served after that user's or
# post's change, and nothing else in the suite asked.

@pytest.mark.parametrize("found", [None, "!pending"])
def test_a_render_that_found_an_epoch_missing_or_pending_is_not_stored(
        found: str | None) -> None:
    recording = Recording(VIEWER, 60)
    recording.note(["shown:{1}", "shown:{2}"], ["e1", found])
    assert not recording.cacheable
    assert recording.epochs.get("shown:{1}") == "e1"


def test_every_epoch_a_render_found_missing_is_made_after_it() -> None:
    recording = Recording(VIEWER, 60)
    recording.note(["shown:{1}", "shown:{2}", "shown:{3}"], [None, "e2", None])
    assert recording.missing == {"shown:{1}", "shown:{3}"}
    assert recording.epochs == {"shown:{2}": "e2"}


@pytest.mark.parametrize("first, then", [("e1", "e2"), ("e2", "e1")])
def test_an_epoch_that_moved_between_two_reads_of_one_render_is_not_stored(
        first: str, then: str) -> None:
    recording = Recording(VIEWER, 60)
    recording.note(["shown:{1}"], [first])
    assert recording.cacheable
    recording.note(["shown:{1}"], [then])
    assert not recording.cacheable


def test_a_count_shown_from_an_epoch_nobody_read_first_is_not_stored() -> None:
    unread = Recording(VIEWER, 60)
    unread.use("follows:{1}")
    assert not unread.cacheable
    read_aside = Recording(VIEWER, 60)
    read_aside.aside["follows:{1}"] = "f1"
    read_aside.use("follows:{1}")
    assert read_aside.cacheable and read_aside.epochs == {"follows:{1}": "f1"}
    missing_aside = Recording(VIEWER, 60)
    missing_aside.aside["follows:{1}"] = None  # read first, but it was missing
    missing_aside.use("follows:{1}")
    assert not missing_aside.cacheable and missing_aside.missing == {"follows:{1}"}

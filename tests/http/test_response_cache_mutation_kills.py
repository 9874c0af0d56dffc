"""The response cache's lookups, fences and bound (cache/responses.py) through
ResponseCache on the app's Redis: what issue 21's mutation run found no test asking."""

from __future__ import annotations

import time

import pytest

from pictograph.accounts.sessions import token_key
from pictograph.cache import keys, responses
from pictograph.cache.responses import Recording, ResponseCache, hit_body
from pictograph.resources import Resources

VIEWER = 8001
OWNER = 8002
DOCUMENTED_BOUND = 100  # the README's "one viewer holds at most 100 answers"


@pytest.fixture
def cache(resources: Resources) -> ResponseCache:
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
    assert await cache.store(VIEWER, digest, lookup.version, body, 60)


def test_a_token_is_expired_from_its_expirys_first_millisecond() -> None:
    expires = int(time.time()) + 60
    token = f"{VIEWER}:{expires}".encode()
    assert hit_body(VIEWER, token, b"v1", b"v1\n{}", expires * 1000 - 1) == b"{}"
    assert hit_body(VIEWER, token, b"v1", b"v1\n{}", expires * 1000) is None


def test_a_hit_is_the_bytes_after_the_version_whatever_its_length() -> None:
    later = f"{int(time.time()) + 60}".encode()
    now = int(time.time() * 1000)
    for version in (b"v", b"v1", b"v12", b"v123"):
        stored = version + b"\n" + b'{"data": 1}'
        assert hit_body(VIEWER, str(VIEWER).encode() + b":" + later, version, stored,
                        now) == b'{"data": 1}', version


def test_a_token_of_a_smaller_id_is_not_the_viewers() -> None:
    later = f"{int(time.time()) + 60}".encode()
    now = int(time.time() * 1000)
    for owner in (b"800", b"8000", b"1", b"80011", b"9"):
        assert hit_body(VIEWER, owner + b":" + later, b"v1", b"v1\n{}", now) is None, owner


async def test_a_miss_is_filled_by_one_request_at_the_viewers_current_version(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    first = await cache.lookup(VIEWER, token, "d")
    assert (first.hit, first.filling, first.token_known) == (False, True, True)
    assert first.version == await resources.redis.get(keys.response_version(VIEWER))
    second = await cache.lookup(VIEWER, token, "d")  # the fill is the first request's
    assert (second.hit, second.filling, second.version) == (False, False, first.version)
    assert await cache.store(VIEWER, "d", first.version, b'{"data": 1}', 60)
    assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": 1}'


async def test_a_token_not_cached_as_the_viewers_takes_nothing(
    resources: Resources, cache: ResponseCache,
) -> None:
    unknown = await cache.lookup(VIEWER, token_key(minted_form(VIEWER, "unknown")), "d")
    assert (unknown.hit, unknown.filling, unknown.token_known, unknown.version) == (
        False, False, False, None)


async def test_the_script_judges_a_hit_as_the_mget_does(
    resources: Resources, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response stored between the MGET and the script is answered by the script."""
    token = await signed_in(resources)
    await stored_at_current_version(cache, token, "d", b'{"data": 2}')
    monkeypatch.setattr(responses, "hit_body", lambda *_: None)
    found = await cache.lookup(VIEWER, token, "d")
    assert found.body == b'{"data": 2}' and found.hit


async def test_a_redis_that_lost_its_scripts_still_answers_lookups(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    await cache.lookup(VIEWER, token, "d")  # the script loaded once
    # As after a restart or SCRIPT FLUSH, without flushing a Redis others share.
    cache._hit.sha = "0" * 40
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
        assert await cache.store(VIEWER, f"d{n}", lookup.version, b"{}", ttl)
    kept = [n for n in range(len(ttls))
            if await resources.redis.exists(keys.response(VIEWER, f"d{n}"))]
    assert len(kept) == DOCUMENTED_BOUND
    assert 1 not in kept and 0 in kept
    assert (await cache.lookup(VIEWER, token, "d0")).body == b"{}"


@pytest.mark.parametrize("fences", [1, 2])  # 2: a retried transaction fences again
async def test_a_changes_move_ends_its_fence_for_all_it_fenced_after_another_change(
    resources: Resources, cache: ResponseCache, fences: int
) -> None:
    """The viewer read the owner; the change fences them both. Another change to the
    owner takes the readers set meanwhile: the change's own move must still end its fence
    for the viewer and the owner, who are then answered from the cache again."""
    tokens = {VIEWER: await signed_in(resources), OWNER: await signed_in(resources, OWNER)}
    await Recording(VIEWER, 60).register_now(resources.redis, [keys.user_readers(OWNER)])
    fence = None
    for _ in range(fences):
        fence = await cache.fence([OWNER], also=fence)
    await cache.changed([OWNER])  # another change: its move ends no fence of this one
    for viewer_id, token in tokens.items():
        assert not (await cache.lookup(viewer_id, token, "d")).filling  # fenced
    await cache.changed([OWNER], fence=fence)
    for viewer_id, token in tokens.items():
        lookup = await cache.lookup(viewer_id, token, "e")
        assert lookup.filling and not (lookup.version or "!").startswith("!"), viewer_id


async def test_a_change_moves_the_readers_registered_since_the_last_change_only(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    await Recording(VIEWER, 60).register_now(resources.redis, [keys.user_readers(OWNER)])
    await cache.changed([OWNER])
    # A response that shows nothing of the owner outlives the owner's next change.
    await stored_at_current_version(cache, token, "d")
    await cache.changed([OWNER])
    assert (await cache.lookup(VIEWER, token, "d")).body == b"{}"


async def test_a_change_that_changed_nothing_still_ends_its_own_fence(
    resources: Resources, cache: ResponseCache,
) -> None:
    """A change fenced, then committed nothing to move (its events came to nothing):
    its move names no user or post, and the fenced viewers are cached again at once."""
    token = await signed_in(resources)
    await Recording(VIEWER, 60).register_now(resources.redis, [keys.user_readers(OWNER)])
    fence = await cache.fence([OWNER])
    assert not (await cache.lookup(VIEWER, token, "d")).filling
    await cache.changed((), (), fence)
    assert (await cache.lookup(VIEWER, token, "e")).filling


async def test_a_change_to_a_post_alone_moves_its_readers(
    resources: Resources, cache: ResponseCache,
) -> None:
    token = await signed_in(resources)
    post_readers = [keys.post_readers(9001)]
    await Recording(VIEWER, 60).register_now(resources.redis, post_readers)
    await stored_at_current_version(cache, token, "d")
    await cache.changed((), [9001])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_a_viewers_feed_change_drops_their_answers_but_not_their_fences(
    resources: Resources, cache: ResponseCache,
) -> None:
    """changed_viewers: an author the viewer follows became a celebrity."""
    token = await signed_in(resources)
    await stored_at_current_version(cache, token, "d")
    await cache.changed_viewers([VIEWER])
    dropped = await cache.lookup(VIEWER, token, "d")
    assert not dropped.hit and dropped.filling
    await Recording(VIEWER, 60).register_now(resources.redis, [keys.user_readers(OWNER)])
    fence = await cache.fence([OWNER])
    await cache.changed_viewers([VIEWER])
    assert not (await cache.lookup(VIEWER, token, "e")).filling  # still fenced
    await cache.changed([OWNER], fence=fence)
    assert (await cache.lookup(VIEWER, token, "f")).filling

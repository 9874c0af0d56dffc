"""What a response lookup costs on one server (cache/responses.ResponseCache): a hit on
an answer that recorded epochs is one MGET, the epochs this process expects it to have
recorded in it; a guess that is wrong (another process stored the answer) costs a second
round trip, never the hit; the guesses are bounded, the least recently stored forgotten
first. And every pipeline is a plain one, never MULTI/EXEC, which a cluster refuses
across slots (a change names users and posts on many)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from redis.asyncio.client import Pipeline

from pictograph.accounts.sessions import token_key
from pictograph.cache import keys, replicas, responses
from pictograph.cache.responses import Recording, ResponseCache
from pictograph.resources import Resources
from tests.support.redis_counter import count_redis

VIEWER = 8201
OWNER = 8202
POST = 9201


async def signed_in(resources: Resources, expires_in: int = 600) -> str:
    """The viewer's token cached as the full path caches it (owner:expiry): its key."""
    key = token_key(f"{VIEWER}.{'secret':x<43}")
    await resources.redis.set(key, f"{VIEWER}:{int(time.time()) + expires_in}")
    return key


async def store_showing(cache: ResponseCache, token: str, digest: str,
                        epoch_keys: Sequence[str], body: bytes = b"{}") -> None:
    """A response that read these epochs (made first), stored by `cache`."""
    recording = Recording(VIEWER, 60)
    await recording.depend_now(cache.redis, epoch_keys)
    await cache.make_epochs(recording.missing)
    lookup = await cache.lookup(VIEWER, token, digest)
    assert lookup.filling, lookup
    recording = Recording(VIEWER, 60)
    await recording.depend_now(cache.redis, epoch_keys)
    assert recording.cacheable
    assert await cache.store(VIEWER, digest, lookup, recording, body, 60)


def users(*user_ids: int) -> list[str]:
    return [keys.user_shown(user_id) for user_id in user_ids]


def one_server_only(resources: Resources) -> None:
    """Commands counted and pipelines watched on one server's client (a cluster's are
    tests/http/test_response_cache_cluster.py's)."""
    if resources.settings.redis_cluster:
        pytest.skip("counts one server's commands and pipelines")


@pytest.fixture
def cache(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> ResponseCache:
    monkeypatch.setattr(responses, "EPOCH_LEASE", 0.0)  # a cluster's copies: none held
    return ResponseCache(resources.redis)


async def test_a_hit_on_an_answer_that_recorded_epochs_is_one_command(
    resources: Resources, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_server_only(resources)
    token = await signed_in(resources)
    shown = [*users(OWNER, OWNER + 1, OWNER + 2, OWNER + 3), keys.post_shown(POST)]
    await store_showing(cache, token, "d", shown, b'{"data": 5}')
    with count_redis(monkeypatch) as counted:
        for _ in range(2):
            assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": 5}'
    assert (counted.round_trips, counted.commands) == (2, 2)
    await cache.changed((), [POST])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


@pytest.mark.parametrize("guessed, recorded", [(OWNER, OWNER + 1), (OWNER + 1, OWNER)])
async def test_an_answer_that_recorded_other_epochs_than_guessed_is_judged_by_its_own(
    resources: Resources, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch,
    guessed: int, recorded: int,
) -> None:
    """This process stored the answer showing one user; that user changed, and another
    process stored the answer again, showing another: a hit on the second's epochs, in a
    second round trip, and the next is one again. (Both orders: the guess is compared
    whole.)"""
    token = await signed_in(resources)
    await store_showing(cache, token, "d", users(guessed), b'{"data": "guessed"}')
    await cache.changed([guessed])
    await store_showing(ResponseCache(resources.redis), token, "d", users(recorded),
                        b'{"data": "recorded"}')
    with count_redis(monkeypatch) as counted:
        assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": "recorded"}'
        assert counted.round_trips == 2
        assert (await cache.lookup(VIEWER, token, "d")).body == b'{"data": "recorded"}'
        assert counted.round_trips == 3
    await cache.changed([recorded])
    assert not (await cache.lookup(VIEWER, token, "d")).hit


async def test_the_guesses_are_bounded_and_the_least_recently_stored_go_first(
    resources: Resources, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(responses, "EXPECTED_EPOCHS", 2)
    token = await signed_in(resources)
    for n in (1, 2, 3):
        await store_showing(cache, token, f"d{n}", users(OWNER + n))
    round_trips = {}
    with count_redis(monkeypatch) as counted:
        for n in (3, 2, 1):  # the one forgotten last: its lookup guesses again
            before = counted.round_trips
            assert (await cache.lookup(VIEWER, token, f"d{n}")).hit
            round_trips[n] = counted.round_trips - before
    assert round_trips == {3: 1, 2: 1, 1: 2}


async def test_an_expired_token_takes_nothing_cached_under_it(
    resources: Resources, cache: ResponseCache,
) -> None:
    """Judged by the application's clock (Unix ms), in the MGET and in the script alike."""
    token = await signed_in(resources)
    await store_showing(cache, token, "d", users(OWNER))
    await signed_in(resources, expires_in=-1)
    for digest in ("d", "e"):
        found = await cache.lookup(VIEWER, token, digest)
        assert (found.hit, found.filling, found.token_known) == (False, False, False)


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether each pipeline executed was MULTI/EXEC."""
    seen: list[bool] = []
    execute = Pipeline.execute

    async def recorded(self: Pipeline, raise_on_error: bool = True) -> list:
        seen.append(self.is_transaction)
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", recorded)
    yield seen


async def test_no_pipeline_is_a_transaction(
    resources: Resources, cache: ResponseCache, transactions: list[bool],
) -> None:
    one_server_only(resources)
    token = await signed_in(resources)
    await store_showing(cache, token, "d", users(OWNER, OWNER + 1))  # depend, make_epochs
    assert (await ResponseCache(resources.redis).lookup(VIEWER, token, "d")).hit
    fence = await cache.fence([OWNER], [POST], follows=[OWNER + 1])
    await cache.changed([OWNER + 2], fence=fence)
    await cache.feeds_changed([VIEWER, OWNER])
    assert len(transactions) >= 6 and not any(transactions), transactions


class Waits:
    """A client's ReplicaWait (cache/replicas.py) that records what it was asked to wait
    for, and waits for nothing (as for a master without replicas)."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def queue(self, redis: object, pipe: Pipeline, written: list[str]) -> list:
        self.asked.append(sorted(written))
        return []


async def test_a_fence_that_revokes_waits_for_replicas_and_no_move_does(
    resources: Resources, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fence lost in a failover would let a stale answer be served; a move lost leaves
    the fence, which refuses until it expires, so only a revocation's fence waits."""
    waits = Waits()
    monkeypatch.setattr(resources.redis, replicas._ATTRIBUTE, waits, raising=False)
    fence = await cache.fence([OWNER], [POST])
    await cache.changed([OWNER], fence=fence)
    follow = await cache.fence(follows=[OWNER, VIEWER], revokes=False)
    await cache.changed(follows=[OWNER, VIEWER], fence=follow)
    assert waits.asked == [sorted([
        keys.response_version(OWNER), keys.user_shown(OWNER), keys.post_shown(POST)])]


async def test_a_user_both_changed_and_in_a_pair_has_their_fence_ended_by_the_move(
    resources: Resources, cache: ResponseCache,
) -> None:
    """Going public with pending requests: the owner changed (PrivacyChanged) and is in
    every pair that became a follow (Followed). The change's move ends the owner's fence
    on the owner's own version: their answers are cached again at once."""
    key = token_key(f"{OWNER}.{'secret':x<43}")
    await resources.redis.set(key, f"{OWNER}:{int(time.time()) + 600}")
    fence = await cache.fence([OWNER], revokes=False, settles=True)
    assert not (await cache.lookup(OWNER, key, "d")).filling
    await cache.changed([OWNER], fence=fence, follows=[VIEWER, OWNER])
    lookup = await cache.lookup(OWNER, key, "d")
    assert lookup.filling and not (lookup.version or "!").startswith("!"), lookup


async def test_a_retried_change_ends_the_fences_of_all_its_attempts_whatever_it_names(
    resources: Resources, cache: ResponseCache,
) -> None:
    """A change whose transaction was retried fenced the same users, post and pair on
    each attempt, under one token (Fence, `also`); its move after the commit ends them
    all, even one that names nothing (its events came to nothing)."""
    tokens = {}
    for user_id in (OWNER, OWNER + 1):
        tokens[user_id] = token_key(f"{user_id}.{'secret':x<43}")
        await resources.redis.set(tokens[user_id], f"{user_id}:{int(time.time()) + 600}")
    fence = None
    for _ in range(2):
        fence = await cache.fence([OWNER], [POST], also=fence, follows=[OWNER + 1])
        for user_id, token in tokens.items():  # fenced: their own answers are not cached
            assert not (await cache.lookup(user_id, token, "d")).filling, user_id
    await cache.changed(fence=fence)
    for user_id, token in tokens.items():
        lookup = await cache.lookup(user_id, token, "d")
        assert lookup.filling and not (lookup.version or "!").startswith("!"), user_id
    recording = Recording(VIEWER, 60)
    shown = [keys.user_shown(OWNER), keys.post_shown(POST), keys.user_follows_shown(OWNER + 1)]
    await recording.depend_now(resources.redis, shown)
    await cache.make_epochs(recording.missing)
    recording = Recording(VIEWER, 60)
    await recording.depend_now(resources.redis, shown)
    assert recording.cacheable and sorted(recording.epochs) == sorted(shown)

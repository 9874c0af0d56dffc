"""Commands packed by hand (cache/raw.py): the same bytes redis-py would send, a
script Redis lost is loaded again, an error leaves the connection in step, a block that
fails drops its connection, and a single call survives a connection the server closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Connection
from redis.exceptions import ConnectionError, ResponseError

from pictograph.cache import keys, raw
from pictograph.cache.feeds import FEED_TTL, PUSH_BATCH, FeedCache, PerBatch
from pictograph.cache.raw import PerUser, bulk, call_all, command, evalsha_head
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER

# One connection to one server: on a cluster the fan-out takes redis-py's cluster pipeline
# instead (FeedCache.fanning_out), which tests/feed runs there.
pytestmark = pytest.mark.skipif(REDIS_CLUSTER, reason="raw calls drive one server")

BASE = 400_000_000_000_000
ECHO = "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]}"


def test_a_packed_call_is_what_redis_py_would_send() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    per_user = PerUser(evalsha_head(sha, 2, 3), [keys.home_feed, keys.response_version],
                       bulk(800), [keys.live_viewer], bulk(b'{"kind": "100%"}'))
    expected = Connection().pack_command(
        "EVALSHA", sha, 2, keys.home_feed(12345), keys.response_version(12345), 800,
        keys.live_viewer(12345), b'{"kind": "100%"}')
    assert per_user.call(12345) == b"".join(expected)


def test_ids_of_every_length_are_spliced_in_and_percent_signs_kept() -> None:
    # A template is made per length of id (every argument's length written in once):
    # ids of other lengths, and the same length again, get their own lengths.
    sha = "0123456789abcdef0123456789abcdef01234567"
    per_user = PerUser(evalsha_head(sha, 2, 3), [keys.home_feed, keys.response_version],
                       bulk(b"%s%%d"), [keys.live_viewer], bulk(b"100%s %d %%"))
    for user_id in (7, 12345, BASE, 12345, 98765):
        expected = Connection().pack_command(
            "EVALSHA", sha, 2, keys.home_feed(user_id), keys.response_version(user_id),
            b"%s%%d", keys.live_viewer(user_id), b"100%s %d %%")
        assert per_user.call(user_id) == b"".join(expected), user_id


async def test_every_call_runs_and_a_lost_script_is_loaded_again(
    resources: Resources,
) -> None:
    redis = resources.redis
    script = redis.register_script(ECHO)
    per_user = PerUser(evalsha_head(script.sha, 2, 3), [keys.home_feed, keys.live_viewer],
                       bulk("a"), [keys.response_version], bulk("z"))
    await redis.script_flush()  # as after a restart: the first calls answer NOSCRIPT
    await call_all(redis, ECHO, script.sha, [per_user.call(u) for u in (1, 22, 333)])
    assert await script(keys=["k:{1}", "j:{1}"], args=[1, 2, 3]) == ["k:{1}", "j:{1}", "1",
                                                                       "2", "3"]


async def test_an_error_is_raised_after_all_replies_are_read(resources: Resources) -> None:
    redis = resources.redis
    feeds = FeedCache(redis)
    await redis.set(keys.home_feed(2), "not a feed")  # a wrong value: that call fails
    with pytest.raises(ResponseError):
        await feeds.push([1, 2, 3], [BASE], b"{}")
    for user_id in (1, 3):  # the calls around it ran
        assert (await feeds.stored_ids(keys.home_feed(user_id))).ids == [BASE]
    assert await redis.ping()  # and the connections are in step
    assert await redis.get(keys.home_feed(2)) == "not a feed"


async def test_a_fan_out_that_fails_midway_drops_its_connection(resources: Resources) -> None:
    feeds = FeedCache(resources.redis)
    with pytest.raises(RuntimeError, match="the worker died"):
        async with feeds.fanning_out([BASE], b"{}") as fan_out:
            assert await fan_out.push([1, 2]) == 2
            raise RuntimeError("the worker died")
    # The batch sent before the failure was written; the pool's connections are sound.
    assert await resources.redis.ping()
    for user_id in (1, 2):
        assert (await feeds.stored_ids(keys.home_feed(user_id))).ids == [BASE]


def test_a_command_packed_by_hand_is_what_redis_py_would_send() -> None:
    packed = command(4, bulk("MGET"), bulk("a"), bulk("b{1}") + bulk(b"c\r\n"))
    assert packed == b"".join(Connection().pack_command("MGET", "a", "b{1}", b"c\r\n"))


async def test_a_call_reads_its_reply_undecoded_and_keeps_the_connection_in_step(
    resources: Resources,
) -> None:
    redis = resources.redis
    await redis.set("raw:{1}", "é")
    packed = command(3, bulk("MGET"), bulk("raw:{1}"), bulk("raw:{1}:missing"))
    assert await raw.call(redis, packed) == ["é".encode(), None]
    with pytest.raises(ResponseError):  # an error reply is raised, the connection kept
        await raw.call(redis, command(2, bulk("LLEN"), bulk("raw:{1}")))
    assert await raw.call(redis, packed) == ["é".encode(), None]
    assert await redis.ping()


async def test_a_call_on_a_connection_the_server_closed_is_sent_again_on_a_fresh_one(
    resources: Resources,
) -> None:
    redis = resources.redis
    await redis.set("raw:{2}", "kept")
    pool = redis.connection_pool
    connection = await pool.get_connection()
    await pool.release(connection)
    failed = 0

    async def closed_by_the_server(*args, **options):  # as after a restart of Redis
        nonlocal failed
        failed += 1
        del connection.send_packed_command  # the class's again, for the next send
        raise ConnectionError("Connection closed by server.")

    connection.send_packed_command = closed_by_the_server  # type: ignore[method-assign]
    packed = command(2, bulk("GET"), bulk("raw:{2}"))
    assert await raw.call(redis, packed) == b"kept"
    assert failed == 1


async def test_a_call_that_fails_twice_raises(resources: Resources,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    packed = command(2, bulk("GET"), bulk("raw:{3}"))
    pool = resources.redis.connection_pool
    connection = await pool.get_connection()
    await pool.release(connection)
    connection_class = type(connection)
    original = connection_class.send_packed_command
    sent = 0

    async def refused(self, command, *args, **options):  # the handshake goes through
        nonlocal sent
        if command != packed:
            return await original(self, command, *args, **options)
        sent += 1
        raise ConnectionError("Connection reset by peer.")

    monkeypatch.setattr(connection_class, "send_packed_command", refused)
    with pytest.raises(ConnectionError):
        await raw.call(resources.redis, packed)
    assert sent == 2


def test_a_batch_of_followers_is_packed_as_redis_py_would_pack_the_call() -> None:
    sha = "f" * 40
    packed = PerBatch(sha, 800, b'{"kind": "post_added"}', ["x1", "x2"]).call([7, 12])
    follower_keys = [name(user_id) for user_id in (7, 12) for name in (
        keys.home_feed, keys.response_feed_version, keys.live_connections)]
    assert packed == b"".join(Connection().pack_command(
        "EVALSHA", sha, 6, *follower_keys, 800, FEED_TTL, b'{"kind": "post_added"}', 2,
        keys.LIVE_PROCESS_PREFIX, keys.live_viewer(7), 7, keys.live_viewer(12), 12,
        "x1", "x2"))


async def test_a_fan_out_on_one_server_is_one_call_per_batch_of_followers(
    resources: Resources,
) -> None:
    feeds = FeedCache(resources.redis)
    followers = list(range(1, 2 * PUSH_BATCH + 2))  # two full batches and one more
    sent: list[bytes] = []
    real = raw.streaming

    @asynccontextmanager
    async def recorded(*args: Any) -> AsyncIterator[Any]:
        async with real(*args) as send:
            async def recording(calls: list[bytes]) -> None:
                sent.extend(calls)
                await send(calls)
            yield recording

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raw, "streaming", recorded)
        await feeds.push(followers, [BASE], b"{}")
    assert len(sent) == 3
    for user_id in (1, PUSH_BATCH, PUSH_BATCH + 1, followers[-1]):
        assert (await feeds.stored_ids(keys.home_feed(user_id))).ids == [BASE]

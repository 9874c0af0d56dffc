"""Script calls packed by hand (cache/raw.py): the same bytes redis-py would send, a
script Redis lost is loaded again, an error leaves the connection in step, and a block
that fails drops its connection."""

from __future__ import annotations

import pytest
from redis.asyncio import Connection
from redis.exceptions import ResponseError

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.cache.raw import PerUser, bulk, call_all, evalsha_head
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

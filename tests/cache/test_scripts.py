"""Scripts are registered once per client (cache/scripts.py): the caches a request or an
open subscription builds share them instead of hashing and keeping copies of their own."""

from __future__ import annotations

import gc
import weakref

from fakeredis.aioredis import FakeRedis

from pictograph.cache import scripts
from pictograph.cache.feeds import FeedCache
from pictograph.cache.graph import GraphCache
from pictograph.cache.responses import ResponseCache
from pictograph.cache.versioned import Versions


class CountingRedis(FakeRedis):
    registrations = 0

    def register_script(self, script: str):  # type: ignore[no-untyped-def]
        CountingRedis.registrations += 1
        return super().register_script(script)


def test_caches_built_again_on_one_client_register_nothing_more() -> None:
    redis = CountingRedis()
    first = [GraphCache(redis), FeedCache(redis), ResponseCache(redis), Versions(redis)]
    registered = CountingRedis.registrations
    assert registered > 10  # every distinct script of the four caches, once

    again = [GraphCache(redis), FeedCache(redis), ResponseCache(redis), Versions(redis)]
    assert CountingRedis.registrations == registered
    assert again[0]._relations is first[0]._relations
    assert again[1]._push is first[1]._push


def test_another_client_gets_scripts_of_its_own_and_a_dropped_one_is_let_go() -> None:
    one, two = FakeRedis(), FakeRedis()
    assert GraphCache(one)._relations is not GraphCache(two)._relations
    assert GraphCache(two)._relations.registered_client is two

    gone = weakref.ref(two)
    del two
    gc.collect()
    assert gone() is None  # its scripts do not keep it alive


async def test_a_shared_script_still_runs() -> None:
    redis = FakeRedis()
    assert await scripts.script(redis, "return ARGV[1]")(args=["x"]) == b"x"
    assert await scripts.script(FakeRedis(), "return ARGV[1]")(args=["y"]) == b"y"

"""The live hub on a Redis Cluster uses sharded pub/sub (cache/pubsub.py): each channel
is subscribed on the node serving its slot and published there alone; and a channel
Redis unsubscribes by itself (its slot moved: a resharding) is subscribed again, on the
slot map of the moment, with every listener told to resync."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import RedisCluster

from pictograph.cache import keys
from pictograph.cache.pubsub import RESYNC, LiveHub, listened, publish
from pictograph.resources import Resources
from tests.conftest import require_services

# Ids no test user has (pub/sub is not per database: suites may share the server).
CHANNELS = [keys.live_viewer(user_id) for user_id in range(9_000_001, 9_000_007)]


async def until_listened_as(redis: object, channels: list[str], counts: list[int]) -> None:
    async with asyncio.timeout(5):
        while True:
            if await listened(redis, *channels) == counts:  # type: ignore[arg-type]
                return
            await asyncio.sleep(0.01)


async def test_channels_are_heard_on_their_own_nodes_and_published_there(
    resources: Resources,
) -> None:
    redis = resources.redis
    if not isinstance(redis, RedisCluster):
        pytest.skip("needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")
    hub = LiveHub(redis)
    await hub.start()
    try:
        async with hub.listener() as listener:
            await listener.listen_to(CHANNELS)
            assert {redis.get_node_from_key(c).name for c in CHANNELS} == {
                node.name for node in redis.get_primaries()}  # the test spans the nodes
            assert await listened(redis, *CHANNELS) == [1] * len(CHANNELS)
            for node in redis.get_primaries():  # no plain SUBSCRIBE anywhere
                counts = await redis.pubsub_numsub(*CHANNELS, target_nodes=node)
                assert [count for _, count in counts] == [0] * len(CHANNELS)
            for number, channel in enumerate(CHANNELS):
                await publish(redis, channel, b'{"kind": "post_added", "post_id": %d}'
                              % number)
            async with asyncio.timeout(5):
                got = [await listener.get() for _ in CHANNELS]
            assert sorted(message["post_id"] for message in got) == list(range(len(CHANNELS)))
        # Closed: unsubscribed on every node.
        await until_listened_as(redis, CHANNELS, [0] * len(CHANNELS))
    finally:
        await hub.stop()


async def test_a_channel_the_server_unsubscribed_is_subscribed_again_and_resyncs(
    resources: Resources,
) -> None:
    if resources.settings.embedded_redis:
        pytest.skip("needs a real Redis")
    await require_services()
    redis = resources.redis
    hub = LiveHub(redis)
    await hub.start()
    try:
        async with hub.listener() as listener:
            channel = CHANNELS[0]
            await listener.listen_to([channel])
            kind = "sunsubscribe" if isinstance(redis, RedisCluster) else "unsubscribe"
            # What Redis says to a subscriber when the channel's slot migrates away.
            await hub._handle({"type": kind, "channel": channel.encode(), "data": 0})
            async with asyncio.timeout(5):
                assert await listener.get() == {"kind": RESYNC}
            await until_listened_as(redis, [channel], [1])
            await publish(redis, channel, b'{"kind": "post_added", "post_id": 7}')
            async with asyncio.timeout(5):
                assert await listener.get() == {"kind": "post_added", "post_id": 7}
    finally:
        await hub.stop()

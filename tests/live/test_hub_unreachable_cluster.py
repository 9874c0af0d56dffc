"""The live hub's reconnect on a Redis Cluster that no node answers: redis-py raises
RedisClusterUnreachableError there, which is not a RedisError. The hub must count it as
Redis being away and try again after a pause, not let its supervisor die (then it never
reconnects: its listeners get no RESYNC, and new subscriptions time out for good).

No Redis is needed: the client's slot map names a node nobody listens on, and the
topology refresh is made to find no node, as it would with the whole cluster away."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import ClusterNode, NodesManager, RedisCluster
from redis.exceptions import RedisClusterUnreachableError

from pictograph.cache.pubsub import LiveHub
from tests.support.s3 import free_port


async def test_a_cluster_no_node_answers_leaves_the_hub_retrying(
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    cluster = RedisCluster(host="127.0.0.1", port=port)
    node = ClusterNode("127.0.0.1", port, "primary", **cluster.nodes_manager.connection_kwargs)
    cluster.nodes_manager.nodes_cache = {node.name: node}
    cluster.nodes_manager.slots_cache = {slot: [node] for slot in range(16384)}
    cluster.nodes_manager.default_node = node
    refreshes = 0

    async def unreachable(self: NodesManager, *args: object, **kwargs: object) -> None:
        nonlocal refreshes
        refreshes += 1
        raise RedisClusterUnreachableError("Redis Cluster cannot be connected")

    monkeypatch.setattr(NodesManager, "initialize", unreachable)
    hub = LiveHub(cluster)
    listener = hub.listener()
    # Listened to before the cluster went away (its subscription is not what is tested).
    listener.channels.add("live:{1}:viewer")
    hub._listeners["live:{1}:viewer"].add(listener)
    await hub.start()
    try:
        hub._break()  # the hub's connections were lost
        async with asyncio.timeout(5):
            while refreshes < 3:
                assert hub._supervisor is not None and not hub._supervisor.done(), (
                    hub._supervisor.exception())
                await asyncio.sleep(0.02)
        assert hub._lost  # still away: nothing was subscribed
    finally:
        await hub.stop()
        await cluster.aclose()

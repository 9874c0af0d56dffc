"""Reads packed by hand on a Redis Cluster (cache/cluster_reads.py): every node's share in
one write, the replies in the callers' order, and, when the slot map is stale, nothing
read from the wrong node: None, the connections still in step, so the caller reads the
redis-py way."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from pictograph.cache import cluster_reads
from pictograph.cache.raw import bulk, command
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER

pytestmark = pytest.mark.skipif(not REDIS_CLUSTER,
                                reason="needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")

KEYS = [f"reads:{{{n}}}".encode() for n in range(40)]  # spread over every master


def gets(keys: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [(key, command(2, bulk("GET"), bulk(key))) for key in keys]


async def cluster_of(resources: Resources) -> RedisCluster:
    if not isinstance(resources.redis, RedisCluster):
        pytest.skip("the embedded default is no cluster")
    return resources.redis


async def test_every_node_answers_its_share_in_the_callers_order(
        resources: Resources) -> None:
    cluster = await cluster_of(resources)
    for n, key in enumerate(KEYS[::2]):
        await cluster.set(key.decode(), f"value {n}")
    masters = {cluster.nodes_manager.get_node_from_slot(key_slot(key)).name for key in KEYS}
    assert len(masters) == 3  # the reads below reach every master
    mget = command(3, bulk("MGET"), bulk(KEYS[0]), bulk(KEYS[0] + b":none"))
    found = await cluster_reads.read_by_node(cluster, [(KEYS[0], mget), *gets(KEYS)])
    assert found is not None
    assert found[0] == [b"value 0", None]
    assert found[1:] == [f"value {n // 2}".encode() if n % 2 == 0 else None
                         for n in range(len(KEYS))]


async def test_a_stale_slot_map_reads_nothing_and_leaves_the_connections_in_step(
        resources: Resources) -> None:
    cluster = await cluster_of(resources)
    await cluster.set(KEYS[1].decode(), "moved away")
    slot = key_slot(KEYS[1])
    owner = cluster.nodes_manager.slots_cache[slot]
    elsewhere = next(node for node in cluster.nodes_manager.nodes_cache.values()
                     if node.server_type == "primary" and node.name != owner[0].name)
    cluster.nodes_manager.slots_cache[slot] = [elsewhere]  # as after a failover unseen
    try:
        # The wrong node answers MOVED for that key, never a value: nothing is returned.
        assert await cluster_reads.read_by_node(cluster, gets(KEYS[:6])) is None
    finally:
        cluster.nodes_manager.slots_cache[slot] = owner
    # Every reply was read: the same pooled connections answer the next reads right.
    found = await cluster_reads.read_by_node(cluster, gets(KEYS[:6]))
    assert found is not None and found[1] == b"moved away"
    assert await cluster.get(KEYS[1].decode()) == "moved away"

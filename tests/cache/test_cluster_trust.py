"""cache/cluster_trust.py on a real cluster: each master is vouched for on its own, by a
database row per node, and one that is not is purged alone. Runs when the suite is on a
cluster (PICTOGRAPH_TEST_REDIS_CLUSTER)."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from pictograph.cache import keys
from pictograph.models import RedisEpoch
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER

pytestmark = pytest.mark.skipif(not REDIS_CLUSTER,
                                reason="needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")


def cluster_of(resources: Resources) -> RedisCluster:
    if not isinstance(resources.redis, RedisCluster):
        pytest.skip("the embedded default is no cluster")
    return resources.redis


def lowest_slots(redis: RedisCluster) -> dict[str, int]:
    """Each master's name: the lowest slot it serves (where its trust marker lives)."""
    lowest: dict[str, int] = {}
    for slot, nodes in redis.nodes_manager.slots_cache.items():
        name = nodes[0].name
        lowest[name] = min(slot, lowest.get(name, slot))
    return lowest


async def node_id(redis: RedisCluster, node: ClusterNode) -> str:
    return str(await redis.execute_command("CLUSTER MYID", target_nodes=node))


async def test_every_master_has_its_own_row_and_marker(resources: Resources) -> None:
    redis = cluster_of(resources)
    masters = redis.get_primaries()
    assert len(masters) == 3
    # Every master checked afresh: the processes tests of the run flush the cluster they
    # share with this app, markers and all, and only a new connection notices.
    for master in masters:
        await master.disconnect()
    await redis.ping(target_nodes=RedisCluster.PRIMARIES)
    for master, slot in lowest_slots(redis).items():
        node = redis.get_node(node_name=master)
        row = await RedisEpoch.get(name=f"node:{await node_id(redis, node)}")
        assert await redis.get(keys.redis_trust(keys.shard_tag(slot))) == row.epoch


async def test_a_master_whose_marker_is_gone_is_purged_alone(resources: Resources) -> None:
    redis = cluster_of(resources)
    probes = {master: f"probe:{{{keys.shard_tag(slot)}}}"
              for master, slot in lowest_slots(redis).items()}
    for probe in probes.values():
        await redis.set(probe, "cached")
    doubted, *others = sorted(probes)
    node = redis.get_node(node_name=doubted)
    row = await RedisEpoch.get(name=f"node:{await node_id(redis, node)}")
    marker = keys.redis_trust(keys.shard_tag(lowest_slots(redis)[doubted]))
    await redis.delete(marker)  # as a master restarted empty, or rolled back, would lack it
    await node.disconnect()  # the next command connects again, and checks the node

    assert await redis.get(probes[doubted]) is None  # purged before it was read
    assert [await redis.get(probes[other]) for other in others] == ["cached", "cached"]
    renewed = await RedisEpoch.get(name=row.name)
    assert renewed.epoch != row.epoch
    assert await redis.get(marker) == renewed.epoch

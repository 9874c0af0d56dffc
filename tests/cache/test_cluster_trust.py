"""cache/cluster_trust.py on a real cluster: each master is vouched for on its own, by a
database row per node, and one that is not (its marker gone, or a replica promoted
over it) is purged alone. Runs when the suite is on a
cluster (PICTOGRAPH_TEST_REDIS_CLUSTER)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
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


async def test_a_replica_promoted_by_a_failover_is_purged_before_it_is_read(
    resources: Resources,
) -> None:
    """A replica may be promoted before it caught up: what its master acknowledged last
    (a revocation's fence) may be missing from it. It is a node no row vouches for, so
    nothing is read from it before it is purged, even when (as here) it lost nothing."""
    redis = cluster_of(resources)
    master_name, slot = sorted(lowest_slots(redis).items())[0]
    master = redis.get_node(node_name=master_name)
    probe = f"probe:{{{keys.shard_tag(slot)}}}"
    await redis.set(probe, "cached")
    old_master = Redis(host=master.host, port=master.port, decode_responses=True)
    replica_port = int((await old_master.info("replication"))["slave0"]["port"])
    promoted = Redis(host=master.host, port=replica_port, decode_responses=True)
    try:
        assert await old_master.wait(1, 5000) == 1  # the probe is on the replica too
        await failover(promoted)
        assert await redis.get(probe) is None  # the client follows the slot, checks, purges
        promoted_id = str(await promoted.execute_command("CLUSTER MYID"))
        row = await RedisEpoch.get(name=f"node:{promoted_id}")
        assert await promoted.get(keys.redis_trust(keys.shard_tag(slot))) == row.epoch

        # And back: the old master, promoted again, holds what it copied from the
        # replica, which may lack the last writes; the client's connections to it,
        # kept from before, are checked again, so it is purged too.
        await redis.set(probe, "cached while it was a replica")
        assert await promoted.wait(1, 5000) == 1
        await failover(old_master)
        assert await redis.get(probe) is None
    finally:
        if (await old_master.info("replication"))["role"] != "master":
            await failover(old_master)  # the next tests find the layout they started with
        # The app's client followed the failovers slot by slot (MOVED), which leaves its
        # idea of which nodes are masters behind: FLUSHDB, sent to "every master", would
        # reach a replica in the next test's clean-up.
        await redis.nodes_manager.initialize()
        await old_master.aclose()
        await promoted.aclose()


async def failover(replica: Redis, within: float = 30.0) -> None:
    """CLUSTER FAILOVER on `replica` (its master agrees, nothing is lost), until it and
    the rest of the cluster say it is a master. (Once its link to its master is up: a
    replica demoted a moment ago is still syncing, and would not take over. A manual
    failover asked for just after another can time out on the master's side: asked
    again then.)"""
    deadline = time.monotonic() + within
    while (link := await replica.info("replication")).get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync with its master"
        await asyncio.sleep(0.1)
    # Until the old master knows it too: a moment after the replica took over, the old
    # master may still answer reads of its slots as their master, from the same data.
    demoted = Redis(host=link["master_host"], port=int(link["master_port"]),
                    decode_responses=True)
    try:
        await _take_over(replica, demoted, deadline)
    finally:
        await demoted.aclose()


async def _take_over(replica: Redis, demoted: Redis, deadline: float) -> None:
    asked = 0.0
    while True:
        role = (await replica.info("replication"))["role"]
        state = (await replica.cluster("info"))["cluster_state"]
        if role == "master" and state == "ok" and (
                await demoted.info("replication"))["role"] == "slave":
            return
        assert time.monotonic() < deadline, "the failover did not finish"
        if role != "master" and time.monotonic() - asked > 6:  # Redis gives up after 5 s
            await replica.execute_command("CLUSTER FAILOVER")
            asked = time.monotonic()
        await asyncio.sleep(0.1)

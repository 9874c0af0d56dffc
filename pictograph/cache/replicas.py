"""A revocation's fences on a replica before the change commits: WAIT, on the node that
took them, on the connection that sent them.

Redis replicates asynchronously: a master acknowledges a write before any replica has
it, and a failover to a replica that had not copied it yet loses it. The per-master trust
(cache/cluster_trust.py, cache/trust.py) purges a promoted replica before anything is
read from it, so a lost fence costs a purge there, never a grant. WAIT makes the fence
itself survive the failover too, so that the promise does not rest on that one check:
a revocation that returned has its fences on two machines.

WAIT counts the replicas that acknowledged the client's own last write (its replication
offset), so it is queued in the pipeline that writes the fences, behind them, once per
node they went to: the same connection, still one round trip, longer by a replica's
acknowledgement. A replica copies its master's stream in order, so the acknowledgement
covers whatever the node took before too: the change's earlier fences (the graph's, a
profile's, a post's), which are on the same users' and posts' slots.

Where no replica confirms within WAIT_MS the change fails with ReplicasBehind, a Redis
timeout, which clients see as "temporarily unavailable"; it has not committed (the fences
are taken before the commit), and the fences stay: they only make reads go to the
database until they expire. Which masters have a replica is asked (INFO replication) at
most every REFRESH_SECONDS per node, and again at once after a WAIT that failed or a new
slot map: a master whose replica is gone (its replica killed, or itself just promoted) is
waited on at most once more, which answers "unavailable", under "auto". A node the slot
map still calls a master but that says it is a replica (a failover the client has not
heard of) fails the revocation as unavailable and has the map reloaded.

The moves after a commit (ResponseCache.changed, the graph's write-through) are not
waited for: one lost in a failover leaves its fence, which refuses, until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import TimeoutError as RedisTimeoutError

Mode = Literal["auto", "require", "off"]

# How long a revocation waits for a replica's acknowledgement before it answers
# "unavailable". A replica acknowledges within a round trip between the two machines
# (about 0.1 ms on one host); one that takes a second is resyncing or cut off.
WAIT_MS = 1000
# How long a node's count of online replicas is believed before INFO is asked again: a
# replica that came online waits at most this long to be waited for.
REFRESH_SECONDS = 1.0
_ATTRIBUTE = "pictograph_replica_wait"  # where open_redis leaves a client's ReplicaWait


class ReplicasBehind(RedisTimeoutError):
    """No replica of a master acknowledged a revocation's fences within WAIT_MS."""


class ReplicaWait:
    """One per client: the setting, and what it last learned of each master's replicas."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._online: dict[str, tuple[int, float]] = {}  # node name: (replicas, when asked)

    def attach(self, redis: Redis | RedisCluster) -> None:
        setattr(redis, _ATTRIBUTE, self)

    def forget(self, names: Iterable[str] | None = None) -> None:
        """What these nodes (all, by default) have of replicas is asked again at the next
        revocation: the cluster's shards changed (cache/cluster_trust.py)."""
        for name in list(self._online) if names is None else names:
            self._online.pop(name, None)

    async def queue(self, redis: Redis | RedisCluster, pipe: Pipeline | ClusterPipeline,
                    written: list[str]) -> list[tuple[int, str]]:
        """Queues a WAIT behind the writes on every node of `written` (keys) that has a
        replica to wait for; returns each WAIT's position in the replies and its node."""
        if self.mode == "off" or not written:
            return []
        if isinstance(redis, RedisCluster) and not redis.nodes_manager.slots_cache:
            await redis.initialize()  # no command has learned the slot map yet
        queued = []
        for name, node in _nodes(redis, written).items():
            if self.mode == "auto" and not await self._has_replicas(redis, name, node):
                continue
            queued.append((len(pipe), name))
            if node is None:
                pipe.execute_command("WAIT", 1, WAIT_MS)
            else:  # to this node alone: redis-py would send a WAIT to every master
                pipe.execute_command("WAIT", 1, WAIT_MS, target_nodes=node)
        return queued

    def confirm(self, replies: list[Any], queued: list[tuple[int, str]]) -> None:
        """Raises ReplicasBehind unless every WAIT counted a replica. (A WAIT that went to
        a node demoted meanwhile is refused by it: a write redirected to the new master
        was not waited for there.)"""
        behind = [name for position, name in queued
                  if isinstance(replies[position], Exception) or int(replies[position]) < 1]
        for name in behind:
            self._online.pop(name, None)  # asked again at the next revocation
        if behind:
            raise ReplicasBehind(f"no replica of {', '.join(behind)} acknowledged a "
                                 f"revocation's fences within {WAIT_MS} ms")

    async def _has_replicas(self, redis: Redis | RedisCluster, name: str,
                            node: ClusterNode | None) -> bool:
        known = self._online.get(name)
        if known is None or time.monotonic() - known[1] > REFRESH_SECONDS:
            if node is None:
                info = await redis.info("replication")
            else:
                info = await redis.execute_command("INFO", "replication", target_nodes=node)
            if info.get("role") != "master":
                # A slot map from before a failover: the writes would be redirected to
                # the new master, where this WAIT would not go. Unavailable, once: the
                # client learns the new map for the retry.
                if isinstance(redis, RedisCluster):
                    await redis.nodes_manager.initialize()
                raise ReplicasBehind(f"{name} is no longer a master")
            known = self._online[name] = (online_replicas(info), time.monotonic())
        return known[0] > 0


def online_replicas(info: dict[str, Any]) -> int:
    """Replicas INFO replication lists as online: one still taking its first copy does
    not acknowledge anything yet."""
    return sum(1 for name, value in info.items()
               if name.startswith("slave") and isinstance(value, dict)
               and value.get("state") == "online")


def _nodes(redis: Redis | RedisCluster,
           written: list[str]) -> dict[str, ClusterNode | None]:
    """Each master that holds one of the keys, by name; a single Redis is one (None)."""
    if not isinstance(redis, RedisCluster):
        return {"redis": None}
    nodes: dict[str, ClusterNode | None] = {}
    for key in written:
        node = redis.get_node_from_key(key)
        if node is not None:
            nodes.setdefault(node.name, node)
    return nodes


def replica_wait(redis: Redis | RedisCluster) -> ReplicaWait | None:
    """The client's ReplicaWait; None for a client that never waits (the embedded
    fakeredis, a client a test or a tool made)."""
    return getattr(redis, _ATTRIBUTE, None)


async def execute_replicated(redis: Redis | RedisCluster, pipe: Pipeline | ClusterPipeline,
                             written: list[str]) -> list[Any]:
    """Executes `pipe`, whose commands write `written` (keys), and returns once a replica
    of each master they went to has them too (where the client waits: replica_wait).
    Raises what a write raised, as pipe.execute() does, or ReplicasBehind. The replies
    are the writes' only."""
    waiter = replica_wait(redis)
    writes = len(pipe)
    queued = await waiter.queue(redis, pipe, written) if waiter is not None else []
    if not queued:
        return await pipe.execute()
    replies = await pipe.execute(raise_on_error=False)
    for reply in replies[:writes]:
        if isinstance(reply, Exception):
            raise reply
    assert waiter is not None
    waiter.confirm(replies, queued)
    return replies[:writes]

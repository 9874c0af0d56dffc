"""cache/trust.py's check on a Redis Cluster: each master is vouched for on its own.

A cluster's shards roll back one by one (a master restarted from its snapshot, a replica
promoted before it caught up), so each master node has its own database row (named by
its node id, which a restart keeps and a promoted replica does not share) and its own
marker, tagged to the lowest slot it serves so that it lives on that master and is
replicated with its data. A replica promoted over its master is a node no row vouches
for (or one whose row holds an older epoch than the marker it copied), so it is purged
before anything is read from it. Replicas themselves are never read from: the client
asks them for the slot map only, on a connection closed after it.

Every new connection costs one more round trip than on a single Redis (CLUSTER NODES,
to learn whether the node is a master now and which slots it serves)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.event import AsyncAfterSlotsCacheRefreshEvent, AsyncEventListenerInterface
from tortoise.context import TortoiseContext

from pictograph.cache import keys
from pictograph.cache.replicas import replica_wait
from pictograph.cache.trust import CheckedConnection, RedisTrust
from pictograph.outages import RedisNotTrusted


class ClusterTrust:
    """One per cluster client: a RedisTrust per master node, made when the first
    connection to it opens."""

    def __init__(self, database: TortoiseContext) -> None:
        self.database = database
        self._nodes: dict[tuple[str, str], RedisTrust] = {}  # (node id, tag): its trust
        self._plain_class: type[AbstractConnection] | None = None
        self._options: dict[str, Any] = {}
        # The first check of each node reads the database; one at a time, so that the
        # masters' first connections, opened together, take one database connection and
        # not one each (each a connection that a database outage then leaves dead).
        self._first_checks = asyncio.Lock()

    def bind(self, cluster: RedisCluster) -> None:
        """Makes every connection the client opens, to any node, check it first. (The
        nodes the client discovers later are built from the same options.)"""
        options = cluster.connection_kwargs
        plain_class = options["connection_class"]
        checked = type(f"Checked{plain_class.__name__}", (CheckedConnection, plain_class), {})
        self._plain_class = plain_class
        self._options = {name: value for name, value in options.items()
                         if name not in ("connection_class", "max_connections",
                                         "response_callbacks")}
        options["connection_class"] = checked
        options["trust"] = self
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = checked
            node.connection_kwargs["trust"] = self
        # redis-py's own hook for a new slot map (its ClusterPubSub listens there too).
        cluster.nodes_manager._event_dispatcher.register_listeners(
            {AsyncAfterSlotsCacheRefreshEvent: [_MastersChanged(cluster)]})

    async def close(self) -> None:
        await asyncio.gather(*(trust.close() for trust in self._nodes.values()))

    async def check(self, connection: AbstractConnection) -> None:
        node_id, master, slots = await _read_node(connection)
        if not master or not slots:
            # A replica (or a master without slots): the client only asks it for the
            # slot map. Closed once that is answered, so that it is never used after
            # a failover promotes the node, unchecked: whatever a promoted replica
            # lacks of what its master acknowledged, the purge must come first.
            connection.mark_for_reconnect()  # type: ignore[attr-defined]
            return
        tag = keys.shard_tag(min(slots))
        trust = self._nodes.get((node_id, tag))
        if trust is None:
            trust = self._nodes[(node_id, tag)] = self._node_trust(connection, node_id, tag)
        if trust.vouched:
            await trust.check(connection)
            return
        async with self._first_checks:
            await trust.check(connection)

    def _node_trust(self, connection: AbstractConnection, node_id: str, tag: str) -> RedisTrust:
        assert self._plain_class is not None
        trust = RedisTrust(self.database, name=f"node:{node_id}", tag=tag)
        host, port = connection.host, connection.port  # type: ignore[attr-defined]
        options = {**self._options, "host": host, "port": port}
        trust.recover_with(Redis(connection_pool=ConnectionPool(
            connection_class=self._plain_class, max_connections=2, **options)))
        return trust


class _MastersChanged(AsyncEventListenerInterface):
    """Closes the connections of every node that became a master, or serves other slots,
    since the last slot map. A master demoted by a failover keeps its clients'
    connections, and the client would send it its shard's commands on them again once a
    failback promoted it: unchecked, though it holds only what its replica had copied
    of the writes acknowledged meanwhile."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self._masters: dict[str, int] = {}  # node name: the lowest slot it serves

    async def listen(self, event: object) -> None:
        masters: dict[str, int] = {}
        for slot, nodes in self.cluster.nodes_manager.slots_cache.items():
            if nodes:
                name = nodes[0].name
                masters[name] = min(slot, masters.get(name, slot))
        changed = {name for name in masters.keys() | self._masters.keys()
                   if masters.get(name) != self._masters.get(name)}
        first = not self._masters
        self._masters = masters
        if first:
            return  # the first map: every connection so far was checked against it
        waiter = replica_wait(self.cluster)
        if waiter is not None:  # a promoted master has no replica yet, a demoted one none
            waiter.forget(changed)
        for name in changed:
            node = self.cluster.get_node(node_name=name)
            if node is not None:
                node.update_active_connections_for_reconnect()  # closed once released
                await node.disconnect_free_connections()  # checked again on their next use


async def _read_node(connection: AbstractConnection) -> tuple[str, bool, list[int]]:
    """The node's id, whether it is a master, and the slots it serves (CLUSTER NODES's
    line flagged `myself`)."""
    await connection.send_command("CLUSTER", "NODES")
    reply = await connection.read_response()
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and "myself" in fields[2].split(","):
            return fields[0], "master" in fields[2].split(","), _slots(fields[8:])
    raise RedisNotTrusted("redis did not say which cluster node it is (CLUSTER NODES)")


def _slots(ranges: list[str]) -> list[int]:
    """The first and last slot of each of CLUSTER NODES's ranges ("0-5460", "5461"):
    enough for the lowest. Slots being imported or migrated ("[...]") are not yet, or no
    longer, the node's own."""
    slots = []
    for part in ranges:
        if part.startswith("["):
            continue
        first, _, last = part.partition("-")
        slots.append(int(first))
        if last:
            slots.append(int(last))
    return slots


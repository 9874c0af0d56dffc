"""Reads on a Redis Cluster packed by hand: one write and one read per node, the nodes
side by side.

A cluster's hit reads the viewer's keys (one slot) and the epochs of the users and posts
the response showed (each on its own slot). Through redis-py's cluster pipeline each of
those thirty-odd GETs cost about 30 us of Python (its slot, its node, a timeout per
reply): a hit took 1.7 ms of CPU against 0.25 ms on one server (bench/cluster.py). Here
the commands are grouped by the node that serves their slot in redis-py's own slot map,
written to that node's pooled connection at once, and their replies read undecoded.

Only reads, and only when every node answers every command: a redirection (MOVED, ASK:
the slot map is stale after a failover or a resharding), a node down or a pool full
gives None, and the caller reads the redis-py way, which follows redirections and
refreshes the map. A node that does not serve a slot answers MOVED, never a value, so
nothing read here can come from the wrong node.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError


async def read_by_node(cluster: RedisCluster,
                       commands: Sequence[tuple[bytes, bytes]]) -> list[Any] | None:
    """The replies to `commands`, each (a key it reads, the command packed by hand), in
    their order; None if any node could not answer all of its own."""
    groups: dict[str, tuple[ClusterNode, list[int]]] = {}
    try:
        for index, (key, _) in enumerate(commands):
            node = cluster.nodes_manager.get_node_from_slot(key_slot(key))
            groups.setdefault(node.name, (node, []))[1].append(index)
    except RedisError:  # a slot nobody serves now
        return None
    replies: list[Any] = [None] * len(commands)

    async def on_node(node: ClusterNode, indexes: list[int]) -> bool:
        connection = node.acquire_connection()  # MaxConnectionsError: a full pool
        answered = True
        try:
            await connection.send_packed_command(b"".join(commands[i][1] for i in indexes))
            # One deadline for the node's replies instead of the socket timeout on every
            # one (raw.streaming's reason: setting one up costs more than a reply).
            async with asyncio.timeout(connection.socket_timeout):
                for i in indexes:
                    try:
                        replies[i] = await connection.read_response(
                            disable_decoding=True, timeout=math.inf)
                    except ResponseError:  # MOVED, ASK, CLUSTERDOWN: read on, give up
                        answered = False
        except BaseException:
            await connection.disconnect()  # replies may be left unread
            raise
        finally:
            node.release(connection)
        return answered

    try:
        if len(groups) == 1:  # a hit whose epochs are all held: no task to start
            [(node, indexes)] = groups.values()
            answered = [await on_node(node, indexes)]
        else:
            answered = await asyncio.gather(*(on_node(node, indexes)
                                              for node, indexes in groups.values()))
    except (RedisError, TimeoutError):  # TimeoutError: a node past the deadline
        return None
    return replies if all(answered) else None

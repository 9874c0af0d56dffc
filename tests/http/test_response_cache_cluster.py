"""On a Redis Cluster, a warm feed is still one round trip and no SQL: the rendered
response's hit reads the viewer's token, version and response, all on the viewer's slot,
in one command to one node. Runs when the suite is on a cluster
(PICTOGRAPH_TEST_REDIS_CLUSTER, as CI's cluster subset runs it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from pictograph.cache import cluster_reads, keys, responses
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER
from tests.support.counting import count_queries
from tests.support.feeds import feed_captions, publish
from tests.support.graphql import relate_ok, sign_up, user_id
from tests.support.redis_counter import count_redis

pytestmark = pytest.mark.skipif(not REDIS_CLUSTER,
                                reason="needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")


async def reader_of_one_post(client: httpx.AsyncClient, resources: Resources) -> str:
    """The token of a reader following an author who posted "hello"."""
    reader = await sign_up(client, "reader")
    author = await sign_up(client, "author")
    await relate_ok(client, "follow", reader, await user_id(client, "author"))
    await publish(client, resources, author, "hello")
    return reader


async def test_a_warm_feed_is_one_round_trip_to_the_viewers_slot_and_no_sql(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The epochs the response recorded, on their users' and posts' slots, are compared
    with the copies this process holds of them (cache/responses.py, EpochLeases): here
    for a minute, so that a slow machine cannot let them lapse between the two reads."""
    if not isinstance(resources.redis, RedisCluster):
        pytest.skip("the embedded default is no cluster")
    monkeypatch.setattr(responses, "EPOCH_LEASE", 60.0)
    reader = await reader_of_one_post(client, resources)
    first, _ = await feed_captions(client, reader)  # renders and stores

    sent: list[bytes] = []
    with count_redis(monkeypatch) as redis, count_queries() as sql:
        counted = cluster_reads.read_by_node

        async def recorded(cluster: RedisCluster, commands: Any) -> Any:
            sent.extend(packed for _, packed in commands)
            return await counted(cluster, commands)

        # Undone before count_redis undoes its own patch, which this one wraps.
        with monkeypatch.context() as patch:
            patch.setattr(cluster_reads, "read_by_node", recorded)
            again, _ = await feed_captions(client, reader)
    assert again == first == ["hello"]
    assert (redis.round_trips, redis.commands, sql) == (1, 1, [])
    [packed] = sent
    command, *read = packed.split(b"\r\n")[2:-1:2]  # RESP: *n, then $len and each word
    viewer_id = int(reader.partition(".")[0])  # a token names its user
    assert command == b"MGET" and len(read) == 4  # token, versions, response
    assert {key_slot(key) for key in read} == {
        key_slot(keys.response_version(viewer_id).encode())}


async def test_a_hit_reads_the_epochs_it_holds_no_copy_of_beside_the_viewers_keys(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a copy lapsed (here at once: no lease), the epochs of the users and posts the
    response showed, on their own slots, are read with the viewer's MGET in one write per
    node, the nodes side by side (cache/cluster_reads.py), so the hit waits for one round
    trip, not two, and nothing goes through redis-py's per-command cluster machinery."""
    if not isinstance(resources.redis, RedisCluster):
        pytest.skip("the embedded default is no cluster")
    monkeypatch.setattr(responses, "EPOCH_LEASE", 0.0)
    reader = await reader_of_one_post(client, resources)
    await feed_captions(client, reader)  # renders and stores
    await feed_captions(client, reader)  # a hit: this process learns the epochs' keys

    sent: list[list[bytes]] = []
    with count_redis(monkeypatch) as redis, count_queries() as sql:
        counted = cluster_reads.read_by_node

        async def recorded(cluster: RedisCluster, commands: Any) -> Any:
            sent.append([packed for _, packed in commands])
            return await counted(cluster, commands)

        # Undone before count_redis undoes its own patch, which this one wraps.
        with monkeypatch.context() as patch:
            patch.setattr(cluster_reads, "read_by_node", recorded)
            again, _ = await feed_captions(client, reader)
    assert again == ["hello"] and sql == []
    [commands] = sent
    assert commands[0].startswith(b"*5\r\n$4\r\nMGET\r\n")  # the viewer's keys
    assert len(commands) > 1 and all(c.startswith(b"*2\r\n$3\r\nGET\r\n")
                                     for c in commands[1:])  # the epochs it recorded
    assert (redis.round_trips, redis.commands) == (1, len(commands))

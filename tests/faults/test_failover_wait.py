"""A revocation returns only once its fences are on a replica (cache/replicas.py): WAIT on
each master that took them, on the connection that wrote them; where no replica confirms,
it answers "temporarily unavailable" having committed nothing. A lone Redis and the
embedded one have no replica and never wait."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pictograph.cache import keys
from pictograph.cache.replicas import (
    ReplicasBehind,
    ReplicaWait,
    online_replicas,
    replica_wait,
)
from pictograph.models import AuthToken, Follow
from pictograph.resources import Resources
from tests.conftest import REDIS_CLUSTER, TEST_REDIS_URL
from tests.faults.stack import UNAVAILABLE
from tests.support.feeds import publish
from tests.support.graphql import PASSWORD, gql, relate, relate_ok, sign_up, user_id

STATUS = 'query($u: String!) { user(username: $u) { viewerFollowStatus } }'
PRIVATE = "mutation { updateProfile(input: {isPrivate: true}) { id } }"
DELETE = "mutation($id: ID!) { deletePost(id: $id) }"
LOG_OUT = "mutation { logOut }"
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token }
}"""
on_cluster = pytest.mark.skipif(not REDIS_CLUSTER,
                                reason="needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")


def cluster_of(resources: Resources) -> RedisCluster:
    if not isinstance(resources.redis, RedisCluster):
        pytest.skip("the embedded default is no cluster")
    return resources.redis


async def waits(redis: RedisCluster) -> dict[str, int]:
    """WAIT commands each master has run."""
    found = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    return {name: int(stats.get("cmdstat_wait", {}).get("calls", 0))
            for name, stats in found.items()}


async def node_waits(node: Redis) -> int:
    stats = await node.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def waited(redis: RedisCluster, before: dict[str, int]) -> dict[str, int]:
    after = await waits(redis)
    return {name: calls - before.get(name, 0) for name, calls in after.items()
            if calls != before.get(name, 0)}


def node_of(redis: RedisCluster, key: str) -> str:
    node = redis.get_node_from_key(key)
    assert node is not None
    return node.name


async def log_in(client: httpx.AsyncClient, username: str) -> str:
    result = await gql(client, LOG_IN, {"u": username, "p": PASSWORD})
    assert not result.get("errors"), result
    return result["data"]["logIn"]["token"]


def pk(global_id: str) -> int:
    from pictograph.schema.node import decode_global_id

    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[1]


@on_cluster
async def test_each_revocation_waits_once_on_every_master_it_fenced(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    redis = cluster_of(resources)
    alice, bob = await sign_up(client, "alice"), await sign_up(client, "bob")
    alice_id, bob_id = pk(await user_id(client, "alice")), pk(await user_id(client, "bob"))
    users = {node_of(redis, keys.user_shown(alice_id)), node_of(redis, keys.user_shown(bob_id))}

    before = await waits(redis)
    await relate_ok(client, "follow", alice, await user_id(client, "bob"))
    assert await waited(redis, before) == {}  # a follow takes nothing away

    before = await waits(redis)
    assert await relate_ok(client, "unfollow", alice, await user_id(client, "bob")) == "NONE"
    assert await waited(redis, before) == dict.fromkeys(users, 1)

    before = await waits(redis)
    await relate_ok(client, "block", bob, await user_id(client, "alice"))
    assert await waited(redis, before) == dict.fromkeys(users, 1)  # bob's public posts too

    post = await publish(client, resources, bob, "soon gone")
    before = await waits(redis)
    assert not (await gql(client, DELETE, {"id": post}, token=bob)).get("errors")
    assert await waited(redis, before) == dict.fromkeys(
        {node_of(redis, keys.user_shown(bob_id)), node_of(redis, keys.post_shown(pk(post)))}, 1)

    before = await waits(redis)
    assert not (await gql(client, PRIVATE, token=bob)).get("errors")
    assert await waited(redis, before) == {node_of(redis, keys.user_shown(bob_id)): 1}

    before = await waits(redis)
    assert not (await gql(client, LOG_OUT, token=alice)).get("errors")
    assert await waited(redis, before) == {node_of(redis, keys.user_shown(alice_id)): 1}


@asynccontextmanager
async def replicas_stopped(resources: Resources) -> AsyncIterator[list[int]]:
    """Stops (SIGSTOP) every replica of the cluster; their masters still count them as
    connected, and WAIT finds nobody acknowledging. Continued afterwards, whatever
    happened."""
    redis = cluster_of(resources)
    # Every replica online first (one still resyncing after an earlier test is one its
    # master does not wait for), and asked about afresh by the next revocation.
    deadline = asyncio.get_running_loop().time() + 30
    replicas: list[int] = []  # ports: every replica a master counts (the client's map
    # may lack one another node still flags as failed, after a node came back)
    for master in redis.get_primaries():
        plain = Redis(host=master.host, port=master.port, decode_responses=True)
        try:
            while online_replicas(info := await plain.info("replication")) < 1:
                assert asyncio.get_running_loop().time() < deadline, "a replica stays away"
                await asyncio.sleep(0.05)
        finally:
            await plain.aclose()
        replicas += [int(value["port"]) for name, value in info.items()
                     if name.startswith("slave") and isinstance(value, dict)]
    waiter = replica_wait(redis)
    assert waiter is not None
    waiter.forget()
    stopped: list[int] = []
    try:
        for port in replicas:
            stopped.append(await process_id(port))
            os.kill(stopped[-1], signal.SIGSTOP)
        yield stopped
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


async def process_id(port: int) -> int:
    plain = Redis(port=port)
    try:
        return int((await plain.info("server"))["process_id"])
    finally:
        await plain.aclose()


@on_cluster
async def test_a_revocation_no_replica_confirms_answers_unavailable_and_changes_nothing(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    alice = await sign_up(client, "alice")
    await sign_up(client, "bob")
    bob_id = await user_id(client, "bob")
    await relate_ok(client, "follow", alice, bob_id)

    carol = await sign_up(client, "carol")
    async with replicas_stopped(resources):
        unfollowed = await relate(client, "unfollow", alice, bob_id)
        followed = await relate(client, "follow", carol, bob_id)
        logged_out = await gql(client, LOG_OUT, token=alice)
    assert UNAVAILABLE in unfollowed["errors"][0]["message"], unfollowed
    assert UNAVAILABLE in logged_out["errors"][0]["message"], logged_out
    # Nothing taken away, nothing waited for: a follow goes through.
    assert followed["data"]["follow"]["status"] == "FOLLOWING", followed
    # Nothing committed: the follow and the token stand in the database.
    assert await Follow.filter(follower_id=pk(await user_id(client, "alice"))).count() == 1
    assert await AuthToken.filter(revoked_at__isnull=False).count() == 0
    status = await gql(client, STATUS, {"u": "bob"}, token=await log_in(client, "alice"))
    assert status["data"]["user"]["viewerFollowStatus"] == "FOLLOWING"
    # The logOut's fence stays: its token is refused until it is logged out again.
    viewer = await gql(client, "{ viewer { username } }", token=alice)
    assert viewer["data"]["viewer"] is None, viewer


@on_cluster
async def test_once_the_replicas_are_back_the_revocation_goes_through(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    alice = await sign_up(client, "alice")
    await sign_up(client, "bob")
    bob_id = await user_id(client, "bob")
    await relate_ok(client, "follow", alice, bob_id)
    async with replicas_stopped(resources):
        assert "errors" in await relate(client, "unfollow", alice, bob_id)
    assert await relate_ok(client, "unfollow", alice, bob_id) == "NONE"
    status = await gql(client, STATUS, {"u": "bob"}, token=alice)
    assert status["data"]["user"]["viewerFollowStatus"] == "NONE"


async def test_a_redis_without_replicas_is_never_waited_on(resources: Resources) -> None:
    """The embedded fakeredis has no replica; a lone Redis says it has none, and the
    revocations' pipelines queue no WAIT on it."""
    waiter = replica_wait(resources.redis)
    if waiter is None:
        assert resources.settings.embedded_redis
        return
    assert waiter.mode == "auto"
    if REDIS_CLUSTER:
        pytest.skip("a cluster's masters have replicas: the tests above")
    redis = resources.redis
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.response_version(1), "v1")
        assert await waiter.queue(redis, pipe, [keys.response_version(1)]) == []


@pytest.mark.skipif(REDIS_CLUSTER, reason="a lone Redis: the run's services Redis")
async def test_require_fails_a_revocation_on_a_master_without_replicas(
    resources: Resources,
) -> None:
    """PICTOGRAPH_REDIS_WAIT_REPLICAS=require: a master with no replica to confirm fails
    the revocation (after WAIT_MS) instead of letting it return unreplicated."""
    if resources.settings.embedded_redis:
        pytest.skip("the embedded fakeredis has no WAIT")
    redis = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    try:
        if int((await redis.info("replication"))["connected_slaves"]):
            pytest.skip("the test Redis has replicas")
        ReplicaWait("require").attach(redis)
        from pictograph.cache.replicas import execute_replicated

        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.response_version(1), "fenced", ex=60)
            with pytest.raises(ReplicasBehind):
                await execute_replicated(redis, pipe, [keys.response_version(1)])
        assert await redis.get(keys.response_version(1)) == "fenced"  # the fence stays
    finally:
        await redis.delete(keys.response_version(1))
        await redis.aclose()



@on_cluster
async def test_revocations_behind_a_failover_the_client_has_not_seen_wait_on_the_new_master(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    """A failover the client has not heard of yet: a revocation's first command to the
    old master is redirected (MOVED), which moves the slot in the client's map, and its
    fences then wait on the new master. Where the fences' WAIT would be the first (the
    map still naming the old master), the revocation answers unavailable and the map is
    reloaded, since the redirected fences would not be waited for."""
    from tests.cache.test_cluster_trust import failover

    redis = cluster_of(resources)
    alice = await sign_up(client, "alice")
    await sign_up(client, "bob")
    alice_id, bob_id = pk(await user_id(client, "alice")), await user_id(client, "bob")
    await relate_ok(client, "follow", alice, bob_id)
    key = keys.response_version(alice_id)
    node = redis.get_node_from_key(key)
    assert node is not None
    first = Redis(host=node.host, port=node.port, decode_responses=True)
    second = Redis(port=int((await first.info("replication"))["slave0"]["port"]),
                   decode_responses=True)
    waiter = replica_wait(redis)
    assert waiter is not None
    try:
        await failover(second)  # behind the app client's back
        waiter.forget()
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(key, "fenced")
            with pytest.raises(ReplicasBehind):
                await waiter.queue(redis, pipe, [key])
        moved = redis.get_node_from_key(key)
        assert moved is not None and moved.port == second.connection_pool.connection_kwargs[
            "port"]  # the map was reloaded

        await failover(first)  # back, behind its back again
        before = await node_waits(first)
        assert await relate_ok(client, "unfollow", alice, bob_id) == "NONE"
        assert await node_waits(first) == before + 1  # on the master that is now
    finally:
        if (await first.info("replication"))["role"] != "master":
            await failover(first)  # the layout the next tests started with
        await redis.nodes_manager.initialize()
        await first.aclose()
        await second.aclose()

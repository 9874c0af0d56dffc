"""A master fails over while revocations run and their readers read: first by a
CLUSTER FAILOVER on its replica, then by killing the master's process (SIGKILL) until
the cluster promotes the replica (cluster-node-timeout: 2 s on the test cluster).

What must hold, during the failover and after it:
- once a revocation has returned, no read shows what it took away: the feed, the post,
  node(), user.posts, nor a photo URL minted before it;
- every request is either right or "temporarily unavailable", none hangs past
  HANG_BOUND, and within RECOVERY seconds of the promotion every request succeeds;
- nothing is lost: posts, follows and tokens live in PostgreSQL;
- the promoted replica is purged (cache/cluster_trust.py) before anything is read from it.

Runs on a cluster the run started (PICTOGRAPH_TEST_REDIS_CLUSTER=1): the second test
kills a node and starts it again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pictograph.cache import keys
from pictograph.models import AuthToken, Follow, Post, RedisEpoch
from pictograph.resources import Resources
from pictograph.schema.node import decode_global_id
from tests.cache.test_cluster_trust import failover, lowest_slots
from tests.conftest import CLUSTER_FIRST_PORT, REDIS_CLUSTER, START_CLUSTER
from tests.faults.stack import UNAVAILABLE
from tests.support.feeds import publish
from tests.support.graphql import PASSWORD, gql, relate_ok, sign_up, user_id
from tests.support.redis_cluster import RUNNING

pytestmark = pytest.mark.skipif(not REDIS_CLUSTER,
                                reason="needs a cluster: PICTOGRAPH_TEST_REDIS_CLUSTER=1")

HANG_BOUND = 20.0  # seconds a request may take, at most, whatever Redis does
RECOVERY = 15.0  # seconds after the promotion by which every request succeeds again
SEEN = """query($id: ID!, $doomed: ID!, $u: String!) {
  feed(first: 20) { edges { node { id } } }
  post(id: $id) { id media(size: THUMBNAIL) { url } }
  node(id: $id) { id }
  doomed: post(id: $doomed) { id }
  doomedNode: node(id: $doomed) { id }
  user(username: $u) { posts(first: 20) { edges { node { id } } } }
}"""
REFUSALS = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token }
}"""


def pk(global_id: str) -> int:
    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[1]


@dataclass
class Reader:
    """One viewer reading one author's post, and what ends its access (a revocation's
    name in World.returned)."""

    token: str
    author: str
    post: str
    ended_by: str | None
    photo: str = ""  # a URL minted while access held


@dataclass
class Tally:
    ok: int = 0
    unavailable: int = 0
    hung: int = 0
    slowest: float = 0.0  # seconds, for the log: bounded by HANG_BOUND (hung) only
    spans: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def during(self, start: float, end: float) -> int:
        """Requests in flight at some moment from `start` to `end`."""
        return sum(1 for began, ended in self.spans if began <= end and ended >= start)
    violations: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # any answer but right or unavailable


@dataclass
class World:
    client: httpx.AsyncClient
    doomed: str  # a post its author deletes
    readers: dict[str, Reader]
    revocations: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]
    returned: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)

    def forbidden(self, reader: Reader, returned: frozenset[str]) -> set[str]:
        gone = {self.doomed} if "deletePost" in returned else set()
        return gone | ({reader.post} if reader.ended_by in returned else set())

    async def read(self, name: str) -> bool:
        """One read of every path by one reader, judged against what had returned before
        it was sent; True if it was answered in full."""
        reader = self.readers[name]
        returned = frozenset(self.returned)
        try:
            result = await self._timed(gql(self.client, SEEN, {
                "id": reader.post, "doomed": self.doomed, "u": reader.author},
                token=reader.token))
        except TimeoutError:
            return False
        data = result.get("data") or {}
        shown = {edge["node"]["id"] for edge in (data.get("feed") or {}).get("edges", [])}
        shown |= {edge["node"]["id"]
                  for edge in ((data.get("user") or {}).get("posts") or {}).get("edges", [])}
        shown |= {found["id"] for found in (data.get("post"), data.get("node"),
                                            data.get("doomed"), data.get("doomedNode"))
                  if found}
        leaked = shown & self.forbidden(reader, returned)
        if leaked:
            self.tally.violations.append(f"{name} shown {sorted(leaked)} after {sorted(returned)}")
        ok = self._judge(name, result, may_refuse=reader.ended_by is not None)
        if reader.photo and reader.ended_by in returned:
            await self._fetch_photo(name, reader)
        return ok

    async def _fetch_photo(self, name: str, reader: Reader) -> None:
        url = urlsplit(reader.photo)
        try:
            response = await self._timed(self.client.get(f"{url.path}?{url.query}"))
        except TimeoutError:
            return
        if response.status_code in (200, 302, 304):
            self.tally.violations.append(f"{name}'s photo URL served after its revocation")
        elif response.status_code not in (403, 503):
            self.tally.wrong.append(f"photo: {response.status_code}")

    async def _timed(self, request: Awaitable[Any]) -> Any:
        """The request's answer, within HANG_BOUND (TimeoutError: counted as hung)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await asyncio.wait_for(request, HANG_BOUND)
        except TimeoutError:
            self.tally.hung += 1
            raise
        finally:
            self.tally.spans.append((started, loop.time()))
            self.tally.slowest = max(self.tally.slowest, loop.time() - started)

    def _judge(self, what: str, result: dict[str, Any], may_refuse: bool = False) -> bool:
        """Right (True), unavailable, or wrong. `may_refuse`: a reader whose access a
        revocation ends may be refused (a logged-out token, a blocked viewer) once it
        has committed, whether or not it has returned yet."""
        errors = result.get("errors") or []
        codes = {error.get("extensions", {}).get("code") for error in errors}
        if not errors or (may_refuse and codes <= REFUSALS):
            self.tally.ok += 1
            return True
        if all(UNAVAILABLE in error["message"] for error in errors):
            self.tally.unavailable += 1
        else:
            self.tally.wrong.append(f"{what}: {errors}")
        return False

    async def keep_reading(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name in self.readers:
                await self.read(name)

    async def revoke_all(self) -> None:
        """Each revocation until it returns (a client retries an unavailable answer)."""
        for name, revoke in self.revocations:
            while True:
                try:
                    result = await self._timed(revoke())
                except TimeoutError:
                    continue
                if self._judge(name, result) or "NOT_FOUND" in str(result.get("errors")):
                    # (NOT_FOUND: a deletion that committed before its answer was lost.)
                    self.returned.add(name)
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)

    async def all_answer(self) -> bool:
        results = [await self.read(name) for name in self.readers]
        return all(results)


async def build_world(client: httpx.AsyncClient, resources: Resources) -> World:
    """A private author with two posts and six approved followers, a public author with
    a stranger reading, and the revocations: one of each kind."""
    author = await sign_up(client, "author")
    shy = await sign_up(client, "shy")
    stranger = await sign_up(client, "stranger")
    names = [f"viewer{i}" for i in range(6)]
    viewers = {name: await sign_up(client, name) for name in names}
    ids = {name: await user_id(client, name) for name in ["author", "shy", *names]}
    assert not (await gql(client, "mutation { updateProfile(input: {isPrivate: true}) "
                                  "{ id } }", token=author)).get("errors")
    for name in names:
        assert await relate_ok(client, "follow", viewers[name], ids["author"]) == "REQUESTED"
        await relate_ok(client, "approveFollowRequest", author, ids[name])
    post = await publish(client, resources, author, "kept")
    doomed = await publish(client, resources, author, "deleted")
    shy_post = await publish(client, resources, shy, "public, then private")
    session = await gql(client, LOG_IN, {"u": "viewer4", "p": PASSWORD})
    second = session["data"]["logIn"]["token"]

    readers = {name: Reader(viewers[name], "author", post, f"{verb}:{name}")
               for name, verb in zip(names[:4], ("unfollow", "removeFollower", "block",
                                                  "blocks"), strict=True)}
    readers["viewer4-session"] = Reader(second, "author", post, "logOut")
    readers["viewer5"] = Reader(viewers["viewer5"], "author", post, None)  # keeps following
    readers["stranger"] = Reader(stranger, "shy", shy_post, "private")

    def pair(mutation: str, token: str, target: str) -> Callable[[], Awaitable[dict]]:
        return lambda: gql(client, f"mutation($id: ID!) {{ {mutation}(userId: $id) "
                                   "{ status } }", {"id": target}, token=token)

    revocations = [
        ("unfollow:viewer0", pair("unfollow", viewers["viewer0"], ids["author"])),
        ("removeFollower:viewer1", pair("removeFollower", author, ids["viewer1"])),
        ("block:viewer2", pair("block", author, ids["viewer2"])),
        ("blocks:viewer3", pair("block", viewers["viewer3"], ids["author"])),
        ("logOut", lambda: gql(client, "mutation { logOut }", token=second)),
        ("deletePost", lambda: gql(client, "mutation($id: ID!) { deletePost(id: $id) }",
                                   {"id": doomed}, token=author)),
        ("private", lambda: gql(client, "mutation { updateProfile(input: "
                                        "{isPrivate: true}) { id } }", token=shy)),
    ]
    world = World(client, doomed, readers, revocations)
    for name, reader in readers.items():  # every path read, and cached, while access holds
        result = await gql(client, SEEN, {"id": reader.post, "doomed": doomed,
                                          "u": reader.author}, token=reader.token)
        assert not result.get("errors"), result
        assert result["data"]["post"]["id"] == reader.post, (name, result)
        if reader.ended_by != "logOut":  # a photo URL is the viewer's, not the session's
            reader.photo = (result["data"]["post"]["media"] or {}).get("url", "")
    return world


async def nothing_lost(world: World) -> None:
    """The database holds every post but the deleted one, every follow but those the
    revocations ended, every token but the one logged out."""
    assert sorted(await Post.all().values_list("id", flat=True)) == sorted(
        pk(reader.post) for name, reader in world.readers.items()
        if name in ("viewer0", "stranger"))
    followers = await Follow.filter(followee__username="author").values_list(
        "follower__username", flat=True)
    assert sorted(followers) == ["viewer4", "viewer5"]
    assert await AuthToken.filter(revoked_at__isnull=True).count() == 9  # 9 sign-ups
    assert await AuthToken.filter(revoked_at__isnull=False).count() == 1


@dataclass
class Shard:
    """The master of the author's slot, its replica, and a probe key on its lowest slot."""

    master: Redis
    replica: Redis
    probe: str
    tag: str


async def shard_of(redis: RedisCluster, key: str) -> Shard:
    node = redis.get_node_from_key(key)
    assert node is not None
    master = Redis(host=node.host, port=node.port, decode_responses=True)
    replica_port = int((await master.info("replication"))["slave0"]["port"])
    tag = keys.shard_tag(lowest_slots(redis)[node.name])
    return Shard(master, Redis(host=node.host, port=replica_port, decode_responses=True),
                 f"probe:{{{tag}}}", tag)


async def under_failover(client: httpx.AsyncClient, resources: Resources,
                         fail: Callable[[World, Shard], Awaitable[None]]) -> Tally:
    redis = resources.redis
    assert isinstance(redis, RedisCluster)
    world = await build_world(client, resources)
    author_id = pk(await user_id(client, "author"))
    shard = await shard_of(redis, keys.user_shown(author_id))
    await redis.set(shard.probe, "cached before the failover")
    assert await redis.get(shard.probe) is not None
    assert await shard.master.wait(1, 5000) == 1  # the replica has it: only a purge drops it

    stop = asyncio.Event()
    readers = asyncio.gather(*(world.keep_reading(stop) for _ in range(2)))
    revoking = asyncio.create_task(world.revoke_all())
    try:
        # Revocations before the failover, then during it.
        await _wait_until(lambda: _true(len(world.returned) >= 2), "two revocations", 30)
        await fail(world, shard)
        promoted_at = asyncio.get_running_loop().time()
        # Every request answers again within RECOVERY seconds of the promotion.
        await _wait_until(world.all_answer, "every reader answered in full", RECOVERY)
        print(f"answering in full {asyncio.get_running_loop().time() - promoted_at:.2f} s "
              f"after the promotion; so far {world.tally.ok} right, {world.tally.unavailable}"
              f" unavailable, {world.tally.hung} hung, {len(world.tally.violations)} "
              f"violations, {len(world.tally.wrong)} wrong, the slowest "
              f"{world.tally.slowest:.2f} s")
        await asyncio.wait_for(revoking, 30)
        assert world.returned == {name for name, _ in world.revocations}
    finally:
        stop.set()
        await readers
        revoking.cancel()
        await asyncio.gather(revoking, return_exceptions=True)
        await redis.nodes_manager.initialize()  # the next tests' FLUSHDB reaches masters only

    for _ in range(2):  # rendered afresh, then from the response cache
        for name in world.readers:
            assert await world.read(name), world.tally.wrong
    assert world.tally.violations == []
    assert world.tally.wrong == []
    assert world.tally.hung == 0
    kept = world.readers["viewer5"]  # and what was not revoked is still shown
    seen = await gql(client, SEEN, {"id": kept.post, "doomed": world.doomed, "u": "author"},
                     token=kept.token)
    assert seen["data"]["post"]["id"] == kept.post, seen
    await nothing_lost(world)
    # The promoted replica was purged before anything was read from it: the probe it had
    # copied is gone, and its marker is the one its database row vouches for.
    promoted = shard.replica
    assert (await promoted.info("replication"))["role"] == "master"
    assert await redis.get(shard.probe) is None
    row = await RedisEpoch.get(name=f"node:{await promoted.execute_command('CLUSTER MYID')}")
    assert await promoted.get(keys.redis_trust(shard.tag)) == row.epoch
    await shard.master.aclose()
    await shard.replica.aclose()
    return world.tally


async def fail_back(resources: Resources, port: int) -> None:
    """The node on `port` master again, as before the test: the run's own test clients
    (the backend's, which flushes every master after the last test) keep the slot map they
    started with."""
    node = Redis(port=port, decode_responses=True)
    try:
        await failover(node)
    finally:
        await node.aclose()
        await resources.redis.nodes_manager.initialize()  # type: ignore[attr-defined]


async def _true(value: bool) -> bool:
    return value


async def _wait_until(check: Callable[[], Awaitable[bool]], what: str,
                      within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def test_a_manual_failover_under_revocations_grants_nothing_and_loses_nothing(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    demoted: list[int] = []

    async def fail(world: World, shard: Shard) -> None:
        demoted.append(int((await shard.master.info("server"))["tcp_port"]))
        await failover(shard.replica)  # the master agrees, and hands over its last writes

    try:
        await under_failover(client, resources, fail)
    finally:
        for port in demoted:
            await fail_back(resources, port)


@pytest.mark.skipif(not START_CLUSTER, reason="kills a node: only a cluster this run started")
async def test_a_killed_master_under_revocations_grants_nothing_and_loses_nothing(
    client: httpx.AsyncClient, resources: Resources,
) -> None:
    cluster = RUNNING[CLUSTER_FIRST_PORT]
    killed: list[int] = []
    masterless: list[tuple[float, float]] = []  # from the kill to the promotion

    async def fail(world: World, shard: Shard) -> None:
        port = int((await shard.master.info("server"))["tcp_port"])
        assert (await shard.replica.info("replication"))["role"] == "slave"
        cluster.kill(port)
        killed.append(port)
        killed_at = asyncio.get_running_loop().time()
        # Promoted once the others call the master failed (cluster-node-timeout) and
        # elect its replica.
        await _wait_until(lambda: _is_serving_master(shard.replica),
                          "the replica promoted", 30)
        masterless.append((killed_at, asyncio.get_running_loop().time()))
        print(f"killed {port}: promoted after {masterless[0][1] - killed_at:.2f} s")

    try:
        tally = await under_failover(client, resources, fail)
        # Requests ran while the shard had no master (each waited for the promotion,
        # within HANG_BOUND, or answered unavailable).
        assert tally.during(*masterless[0]) > 0
    finally:
        for port in killed:  # back as its replacement's replica, then master again
            cluster.restart(port)
            await asyncio.to_thread(cluster.wait_ok)
            await fail_back(resources, port)


async def _is_serving_master(node: Redis) -> bool:
    if (await node.info("replication"))["role"] != "master":
        return False
    return (await node.cluster("info"))["cluster_state"] == "ok"

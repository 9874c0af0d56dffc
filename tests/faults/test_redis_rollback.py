"""A Redis that comes back older, fills up, or evicts: nothing revoked comes back.

Each test runs a server process on a private redis-server (tests/support/redis_server.py):
this one is snapshotted, killed with SIGKILL and started again from its snapshot, as a
crash with AOF everysec or a failover to a lagging replica would bring it back."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
from redis.exceptions import OutOfMemoryError

from pictograph import events
from pictograph.cache import keys
from pictograph.workers.fanout import DEAD_LETTERS
from tests.faults.stack import UNAVAILABLE, Api, Stack, api_for, wait_until
from tests.support.graphql import PASSWORD
from tests.support.processes import _running, output, serve, worker
from tests.support.redis_server import RedisServer, redis_server
from tests.support.s3 import free_port
from tests.support.sockets import SocketClosed, open_socket

SEEN = """query($id: ID!, $u: String!) {
  feed(first: 20) { edges { node { id } } }
  post(id: $id) { id caption media(size: THUMBNAIL) { url } }
  node(id: $id) { id }
  user(username: $u) { viewerFollowStatus posts(first: 20) { edges { node { id } } } }
}"""


def private(redis: RedisServer) -> dict[str, str]:
    """The processes' Redis: the test's own redis-server, a single one even on a run
    whose other tests are on a cluster."""
    return {"PICTOGRAPH_REDIS_URL": redis.url, "PICTOGRAPH_REDIS_CLUSTER": "false"}


async def ready(api: Api, token: str, post_id: str) -> None:
    async def is_ready() -> bool:
        data = await api.ok("query($id: ID!) { post(id: $id) { status } }", {"id": post_id},
                            token)
        return data["post"]["status"] == "READY"
    await wait_until(is_ready, f"post {post_id} READY")


async def seen(api: Api, token: str, post_id: str, author: str) -> dict[str, Any]:
    """What the viewer is shown of the author and the post, on every query path."""
    data = await api.ok(SEEN, {"id": post_id, "u": author}, token)
    return _shown(data)


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    post = data["post"]
    return {
        "feed": [edge["node"]["id"] for edge in data["feed"]["edges"]],
        "post": post is not None,
        "media": post is not None and post["media"] is not None,
        "node": data["node"] is not None,
        "status": data["user"] and data["user"]["viewerFollowStatus"],
        "posts": [edge["node"]["id"] for edge in data["user"]["posts"]["edges"]]
        if data["user"] else [],
    }


async def log_in(api: Api, username: str) -> str:
    data = await api.ok("mutation($u: String!, $p: String!) { logIn(input: {username: $u,"
                        " password: $p}) { token } }", {"u": username, "p": PASSWORD})
    return data["logIn"]["token"]


async def test_redis_back_from_an_older_snapshot_brings_back_nothing_revoked(
        stack: Stack, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        env = {**stack.env, **private(redis)}
        with serve(env) as base:
            async with api_for(base) as api:
                await _rollback_scenario(api, base, redis)


async def _rollback_scenario(api: Api, base: str, redis: RedisServer) -> None:
    author = await api.sign_up("author")
    shy = await api.sign_up("shy")  # goes private
    removed, blocked, stranger = [await api.sign_up(name)
                                  for name in ("removed", "blocked", "stranger")]
    ids = {name: await api.user_id(name) for name in ("author", "removed", "blocked")}
    for token in (removed, blocked):
        await api.relate("follow", token, ids["author"])
    post, shy_post = await api.post(author, "before"), await api.post(shy, "shy before")
    await ready(api, author, post)
    await ready(api, shy, shy_post)
    old_session = await log_in(api, "removed")

    # Every path is read (and cached) while access holds, and a photo URL is minted.
    granted = await seen(api, removed, post, "author")
    assert granted["feed"] == [post] and granted["media"], granted
    assert (await seen(api, blocked, post, "author"))["media"]
    assert (await seen(api, stranger, shy_post, "shy"))["posts"] == [shy_post]
    photo = (await api.ok(SEEN, {"id": post, "u": "author"}, removed)
             )["post"]["media"]["url"]
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(photo)).status_code == 200

    async with open_socket(base, removed) as socket:
        assert _shown((await socket.execute(SEEN, {"id": post, "u": "author"}))["data"]
                      )["media"]
        redis.save()  # the state the restart will bring back

        # The revocations, each confirmed before the crash.
        await api.relate("removeFollower", author, ids["removed"])
        await api.relate("block", author, ids["blocked"])
        await api.ok("mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
                     token=shy)
        assert (await api.ok("mutation { logOut }", token=old_session))["logOut"]
        assert not (await seen(api, removed, post, "author"))["media"]

        redis.kill()
        redis.start()  # from the snapshot: every revocation above is gone from Redis

        async def answers() -> bool:
            body = await api.call("{ viewer { id } }", token=removed)
            return not body.get("errors")
        await wait_until(answers, "the server answers again")
        after = await api.post(author, "after the restore")
        await ready(api, author, after)

        # HTTP queries, from the response cache or rendered afresh.
        for _ in range(2):
            shown = await seen(api, removed, post, "author")
            assert shown == {"feed": [], "post": True, "media": False, "node": True,
                             "status": "NONE", "posts": [after, post]}, shown
            shown = await seen(api, blocked, post, "author")
            assert not shown["media"] and not shown["feed"] and not shown["posts"], shown
            assert shown["status"] in (None, "BLOCKED"), shown
            shown = await seen(api, stranger, shy_post, "shy")
            assert not shown["post"] and not shown["posts"] and not shown["node"], shown
        # The same on the socket opened before the crash.
        for post_id in (post, after):
            shown = _shown((await socket.execute(SEEN, {"id": post_id, "u": "author"}))["data"])
            assert not shown["media"] and not shown["feed"], shown
    # A photo URL minted before, and a socket signed in with a token logged out before.
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(photo)).status_code in (403, 404)
    body = await api.call("{ viewer { id } }", token=old_session)
    assert body.get("errors") or body["data"]["viewer"] is None, body
    try:
        async with open_socket(base, old_session) as socket:
            closed = await asyncio.wait_for(socket.closed, 10)
            raise AssertionError(f"a logged-out token signed a socket in ({closed})")
    except SocketClosed as refused:
        assert refused.code == 4403, refused


async def test_a_revocation_on_a_full_redis_fails_loudly_and_changes_nothing(
        stack: Stack, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", "--maxmemory-policy", "noeviction") as redis:
        env = {**stack.env, **private(redis)}
        with serve(env, workers=False) as base:
            async with api_for(base) as api:
                fan = await api.sign_up("fan")
                await api.sign_up("star")
                star_id = await api.user_id("star")
                await api.relate("follow", fan, star_id)
                with redis.client() as client:
                    used = int(client.info("memory")["used_memory"])
                    client.config_set("maxmemory", used + 256 * 1024)
                    filler = 0
                    try:
                        while True:  # until Redis refuses to store more
                            client.set(f"filler:{filler}", "x" * 4096)
                            filler += 1
                    except OutOfMemoryError:
                        pass
                for mutation in ("unfollow", "block"):
                    body = await api.call(
                        f"mutation($id: ID!) {{ {mutation}(userId: $id) {{ status }} }}",
                        {"id": star_id}, fan)
                    assert body["errors"][0]["message"].lower().find(UNAVAILABLE) >= 0, body
                    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
                body = await api.call("mutation { logOut }", token=fan)
                assert UNAVAILABLE in body["errors"][0]["message"].lower(), body
                # Nothing changed: once Redis has room, the fan still follows, signed in.
                with redis.client() as client:
                    client.config_set("maxmemory", 0)
                    client.delete(*(f"filler:{n}" for n in range(filler)))
                data = await api.ok("query($id: ID!) { node(id: $id) { ... on User {"
                                    " viewerFollowStatus } } }", {"id": star_id}, fan)
                assert data["node"]["viewerFollowStatus"] == "FOLLOWING"
                data = await api.ok(
                    "mutation($id: ID!) { unfollow(userId: $id) { status } }", {"id": star_id},
                    fan)
                assert data["unfollow"]["status"] == "NONE"


async def refused_start_up(env: dict[str, str]) -> str:
    """What `pictograph serve` said when it stopped at start-up (it must stop)."""
    with _running([sys.executable, "-m", "pictograph", "serve", "--port", str(free_port()),
                   "--no-workers"], env) as process:
        code = await asyncio.to_thread(process.wait, 60)
        said = output(process)
    assert code != 0, said
    return said


async def test_an_evicting_redis_stops_start_up_with_what_to_set(
        stack: Stack, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", "--maxmemory", "64mb",
                      "--maxmemory-policy", "allkeys-lru") as redis:
        env = {**stack.env, **private(redis)}
        said = await refused_start_up(env)
        assert "maxmemory-policy allkeys-lru" in said and "noeviction" in said, said

        # Switched to an evicting policy while serving: no new connection is trusted.
        with redis.client() as client:
            client.config_set("maxmemory-policy", "noeviction")
        with serve(env, workers=False) as base:
            async with api_for(base) as api:
                token = await api.sign_up("late")
                with redis.client() as client:
                    client.config_set("maxmemory-policy", "volatile-lru")
                    client.client_kill_filter(_type="normal", skipme=True)
                body = await api.call("{ viewer { username } }", token=token)
                assert UNAVAILABLE in body["errors"][0]["message"].lower(), body
                ready = await api.client.get("/readyz")
                assert ready.status_code == 503, ready.text


async def test_a_cluster_node_reached_as_a_lone_redis_stops_start_up_with_what_to_set(
        stack: Stack, tmp_path: Path) -> None:
    """A plain client of a cluster's node would start and then fail on the first key of
    another node's slots (MOVED): start-up says what to set instead."""
    with redis_server(tmp_path / "redis", "--cluster-enabled", "yes",
                      "--cluster-config-file", str(tmp_path / "nodes.conf")) as redis:
        env = {**stack.env, **private(redis)}
        said = await refused_start_up(env)
        assert "PICTOGRAPH_REDIS_CLUSTER=true" in said, said


async def test_media_jobs_lost_with_a_rollback_are_queued_again(
        stack: Stack, tmp_path: Path) -> None:
    """The media stream holds jobs the database can name (PROCESSING posts): a purge
    drops it, and the workers queue every unfinished post again, where a stream rolled
    back would lack the newest jobs for good."""
    with redis_server(tmp_path / "redis") as redis:
        env = {**stack.env, **private(redis)}
        with serve(env, workers=False) as base:
            async with api_for(base) as api:
                author = await api.sign_up("author")
                with worker(env):  # the media stream's group exists in the snapshot
                    await ready(api, author, await api.post(author, "processed"))
                redis.save()
                queued = await api.post(author, "queued after the snapshot")
                redis.kill()
                redis.start()
                with worker(env):
                    await ready(api, author, queued)


def test_what_a_purge_keeps_is_named_after_the_streams() -> None:
    durable = keys.DURABLE_PREFIXES
    assert keys.event_stream(events.FOLLOWS) in durable
    assert keys.event_stream(events.POSTS) in durable
    assert keys.event_stream(DEAD_LETTERS) in durable
    assert not any(keys.event_stream(events.MEDIA).startswith(prefix) for prefix in durable)
    assert not any(keys.response_version(1).startswith(prefix) for prefix in durable)

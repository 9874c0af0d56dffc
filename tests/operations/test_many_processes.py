"""Many processes on many nodes: two `serve --processes 2` servers on two ports, as two
machines would run them, and two `pictograph worker` processes, all on one PostgreSQL,
one Redis (the run's cluster on a cluster run) and one S3 bucket. A person's requests go
to whichever server the load balancer picks; what one server did, the other shows at
once, and a revocation made through one holds on the other from the moment it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pictograph.schema.node import decode_id_of
from tests.conftest import PROCESS_REDIS_URL, open_test_redis
from tests.support.graphql import PASSWORD
from tests.support.photos import CREATE_POST, CREATE_UPLOAD, jpeg
from tests.support.processes import on_s3, on_services, output, servers_and_workers
from tests.support.sockets import open_socket, until_subscribed

SIGN_UP = """mutation($u: String!, $p: String!) {
  signUp(input: {username: $u, password: $p}) { token user { id } } }"""
FEED = "{ feed(first: 10) { edges { node { id status media(size: THUMBNAIL) { url } } } } }"
POSTS_OF = """query($u: String!) {
  user(username: $u) { posts(first: 10) { edges { node { id } } } } }"""
POST = "query($id: ID!) { post(id: $id) { id status } }"
FEED_UPDATES = "subscription { feedUpdates { kind postId } }"
READY_WITHIN = 30.0  # seconds for a worker to take a photo to READY on two busy cores


class Server:
    """One `serve --processes 2`, as a frontend reaches it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=15)

    async def gql(self, query: str, variables: dict[str, Any] | None = None,
                  token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post("/graphql", headers=headers,
                                        json={"query": query, "variables": variables or {}})
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), body
        return body["data"]

    async def sign_up(self, username: str) -> tuple[str, str]:
        """(token, user id)."""
        data = (await self.gql(SIGN_UP, {"u": username, "p": PASSWORD}))["signUp"]
        return data["token"], data["user"]["id"]

    async def relate(self, mutation: str, token: str, user_id: str) -> str:
        data = await self.gql(f"mutation($id: ID!) {{ {mutation}(userId: $id) {{ status }} }}",
                              {"id": user_id}, token)
        return data[mutation]["status"]

    async def post(self, token: str, caption: str) -> str:
        """A photo sent straight to S3 with the upload ticket, then createPost."""
        photo = jpeg(80, 60)
        ticket = (await self.gql(CREATE_UPLOAD, {"type": "image/jpeg", "size": len(photo)},
                                 token))["createUpload"]
        async with httpx.AsyncClient(timeout=15) as s3:
            sent = await s3.request(ticket["method"], ticket["url"], content=photo,
                                    headers={h["name"]: h["value"] for h in ticket["headers"]})
        assert sent.status_code == 200, sent.text
        created = await self.gql(CREATE_POST, {"upload": ticket["uploadId"], "caption": caption},
                                 token)
        assert created["createPost"]["status"] == "PROCESSING"
        return created["createPost"]["id"]

    async def posts_of(self, username: str, token: str) -> list[str]:
        user = (await self.gql(POSTS_OF, {"u": username}, token))["user"]
        return [edge["node"]["id"] for edge in user["posts"]["edges"]]

    async def feed(self, token: str) -> list[dict[str, Any]]:
        return [edge["node"] for edge in (await self.gql(FEED, token=token))["feed"]["edges"]]

    async def until_ready(self, token: str, post_id: str) -> None:
        """Until a worker has taken the post to READY (as its author sees it here)."""
        deadline = time.monotonic() + READY_WITHIN
        while (await self.gql(POST, {"id": post_id}, token))["post"]["status"] != "READY":
            assert time.monotonic() < deadline, f"post {post_id} was not READY in time"
            await asyncio.sleep(0.1)


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest
                ) -> AsyncIterator[tuple[Server, Server]]:
    """Two servers of two processes each, without workers of their own, and two workers
    beside them: every READY and every feed delivery is a worker process's doing."""
    async with on_services(tmp_path / "data", "pictograph_many") as env:
        env = await on_s3(env, request.getfixturevalue("s3_endpoint"))
        with servers_and_workers(env, servers=2, processes=2, workers=2) as (bases, workers):
            one, two = (Server(base) for base in bases)
            try:
                yield one, two
            finally:
                await one.http.aclose()
                await two.http.aclose()
            for process in workers:  # neither died along the way
                assert process.poll() is None, output(process)


async def test_two_servers_and_two_workers_keep_one_network(
    stack: tuple[Server, Server],
) -> None:
    one, two = stack
    ada, ada_id = await one.sign_up("ada")
    bob, bob_id = await two.sign_up("bob")
    cat, cat_id = await one.sign_up("cat")
    await two.gql("mutation { updateProfile(input: {isPrivate: true}) { id } }", token=cat)

    # Follows, and a private account's approval, each half on the other server.
    assert await two.relate("follow", ada, bob_id) == "FOLLOWING"
    assert await one.relate("follow", bob, cat_id) == "REQUESTED"
    cats_post = await two.post(cat, "for approved eyes")
    await one.until_ready(cat, cats_post)
    assert await two.posts_of("cat", bob) == []
    await two.relate("approveFollowRequest", cat, bob_id)  # (the status is cat's of bob)
    assert await one.posts_of("cat", bob) == [cats_post]

    # A post made through server two, READY by whichever worker took it, is announced
    # live on server one's socket, and is in the feed on both servers.
    redis = open_test_redis(PROCESS_REDIS_URL)
    try:
        async with open_socket(one.base, ada) as socket, \
                socket.subscription(FEED_UPDATES) as updates:
            await until_subscribed(redis, decode_id_of(ada_id, "User"))
            bobs_post = await two.post(bob, "hello from the other machine")
            added = await asyncio.wait_for(anext(updates), READY_WITHIN)
            assert added["data"]["feedUpdates"] == {"kind": "POST_ADDED", "postId": bobs_post}
    finally:
        await redis.aclose()
    for server in (two, one):
        assert [(post["id"], post["status"]) for post in await server.feed(ada)] == [
            (bobs_post, "READY")]

    # The revocation returns on server two; server one refuses at once, on every path,
    # though it had just answered (and cached) the feed and minted a photo URL.
    for _ in range(2):  # the second read is a cached answer
        feed = await one.feed(bob)
        assert cats_post in [post["id"] for post in feed]
    [photo] = [post["media"]["url"] for post in feed if post["id"] == cats_post]
    assert (await one.http.get(photo)).status_code == 302  # to S3
    assert await two.relate("unfollow", bob, cat_id) == "NONE"
    assert cats_post not in [post["id"] for post in await one.feed(bob)]
    assert (await one.gql(POST, {"id": cats_post}, bob))["post"] is None
    assert await one.posts_of("cat", bob) == []
    assert (await one.http.get(photo)).status_code == 403

    # A deletion returns on server two; server one, whose processes hold copies of the
    # post's epoch on a cluster (cache/responses.py, EpochLeases), refuses at once.
    for _ in range(2):  # the second read is a cached answer
        assert bobs_post in [post["id"] for post in await one.feed(ada)]
        assert (await one.gql(POST, {"id": bobs_post}, ada))["post"] is not None
    deleted = await two.gql("mutation($id: ID!) { deletePost(id: $id) }", {"id": bobs_post},
                            token=bob)
    assert deleted == {"deletePost": True}
    assert (await one.gql(POST, {"id": bobs_post}, ada))["post"] is None
    assert bobs_post not in [post["id"] for post in await one.feed(ada)]

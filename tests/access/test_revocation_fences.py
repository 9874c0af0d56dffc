"""A revocation never returns success while a cache can still grant what it revoked, and a
cache fill from before a flush is never taken after it.

Redis is made to fail at the worst moment (after the commit, on every later write) with
monkeypatched cache writes; interleavings are forced with checkpoints, not timing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.accounts.sessions import hash_token
from pictograph.cache import tokens as token_cache
from pictograph.cache.graph import GraphCache
from pictograph.cache.posts import PostCache
from pictograph.cache.responses import ResponseCache
from pictograph.cache.users import ProfileCache
from pictograph.checkpoints import holding
from pictograph.models import AuthToken, Follow
from pictograph.resources import Resources
from tests.support.feeds import publish
from tests.support.graphql import error_codes, gql, relate, sign_up, user_id
from tests.support.redis_state import flush_caches
from tests.support.relations import approach, make_private, owner_and_viewer, revoke

READ = """query($id: ID!) {
  user(username: "owner") { posts { edges { node { caption } } } }
  post(id: $id) { caption media { url } }
}"""
STATUS = '{ user(username: "owner") { viewerFollowStatus } }'


async def redis_fails(*_: object, **__: object) -> None:
    raise RedisConnectionError("redis went away")


def shown(result: dict) -> set[str]:
    data = result["data"]
    captions = {e["node"]["caption"] for e in (data["user"] or {"posts": {"edges": []}})
                ["posts"]["edges"]}
    return captions | ({data["post"]["caption"]} if data["post"] else set())


@pytest.mark.parametrize("change", ["unfollowed", "removed", "blocked_by_owner",
                                    "blocking_owner", "made_private"])
async def test_a_revocation_holds_when_redis_fails_right_after_its_commit(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    owner, owner_id, viewer, viewer_id = await owner_and_viewer(client, change)
    post_id = await publish(client, resources, owner, "private")
    assert shown(await gql(client, READ, {"id": post_id}, token=viewer)) == {"private"}

    # Every cache write after the commit fails: the pair's write-through, dropping the
    # graphs, moving the profile's version.
    monkeypatch.setattr(GraphCache, "apply", redis_fails)
    monkeypatch.setattr(GraphCache, "forget", redis_fails)
    monkeypatch.setattr(ProfileCache, "forget", redis_fails)
    await revoke(client, change, owner, owner_id, viewer, viewer_id)
    monkeypatch.undo()  # Redis is back; nothing has repaired the caches yet

    assert shown(await gql(client, READ, {"id": post_id}, token=viewer)) == set()


async def test_a_change_that_redis_cannot_fence_fails_and_changes_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(client, "owner")
    viewer = await sign_up(client, "viewer")
    owner_id = await user_id(client, "owner")
    await relate(client, "follow", viewer, owner_id)
    monkeypatch.setattr(GraphCache, "fence", redis_fails)
    result = await relate(client, "unfollow", viewer, owner_id)
    monkeypatch.undo()
    assert error_codes(result) == ["INTERNAL_SERVER_ERROR"]
    assert "temporarily unavailable" in result["errors"][0]["message"]
    assert await Follow.all().count() == 1
    status = await gql(client, STATUS, token=viewer)
    assert status["data"]["user"]["viewerFollowStatus"] == "FOLLOWING"


async def test_a_deleted_post_stays_gone_when_redis_fails_after_the_delete(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await sign_up(client, "owner")
    post_id = await publish(client, resources, owner, "regretted")
    assert shown(await gql(client, READ, {"id": post_id})) == {"regretted"}  # cached
    monkeypatch.setattr(PostCache, "forget", redis_fails)
    await gql(client, "mutation($id: ID!) { deletePost(id: $id) }", {"id": post_id},
              token=owner)
    monkeypatch.undo()
    assert shown(await gql(client, READ, {"id": post_id})) == set()


async def test_log_out_that_redis_cannot_record_fails_and_a_retry_revokes(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await sign_up(client, "leaver")
    assert (await gql(client, "{ viewer { username } }", token=token))["data"]["viewer"]
    monkeypatch.setattr(token_cache, "mark_revoked", redis_fails)
    failed = await gql(client, "mutation { logOut }", token=token)
    monkeypatch.undo()
    assert error_codes(failed) == ["INTERNAL_SERVER_ERROR"]
    # Either revoked everywhere or nowhere: the database was not changed behind a cache
    # that still says the token is good.
    row = await AuthToken.get(token_hash=hash_token(token))
    viewer = (await gql(client, "{ viewer { username } }", token=token))["data"]["viewer"]
    assert row.revoked_at is None and viewer == {"username": "leaver"}
    assert (await gql(client, "mutation { logOut }", token=token))["data"] == {"logOut": True}
    assert (await gql(client, "{ viewer { username } }", token=token))["data"]["viewer"] is None


async def test_a_graph_fill_that_read_the_database_before_a_flush_is_refused_after_it(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """A request reads the viewer's graph from the database; meanwhile a follow commits
    and writes through, and Redis is flushed; then the request's older snapshot arrives.
    Taken, it would say "not following" until it expired."""
    owner = await sign_up(client, "owner")
    viewer = await sign_up(client, "viewer")
    await make_private(client, owner)
    owner_id, viewer_id = await user_id(client, "owner"), await user_id(client, "viewer")
    await flush_caches(resources.redis)  # every graph cold
    async with holding("graph.snapshots_read") as hold:
        reader = asyncio.create_task(gql(client, STATUS, token=viewer))
        async with asyncio.timeout(10):
            await hold.wait_reached()
        await approach(client, "following", owner, owner_id, viewer, viewer_id)
        await flush_caches(resources.redis)
        hold.release()
        late = await reader
    assert late["data"]["user"]["viewerFollowStatus"] == "NONE"  # as of its snapshot
    status = await gql(client, STATUS, token=viewer)
    assert status["data"]["user"]["viewerFollowStatus"] == "FOLLOWING"


async def test_a_profile_fill_that_read_the_database_before_a_flush_is_refused_after_it(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """As above for the profile that says whether an account is private: a stale
    "public" taken after the owner went private would show their posts to anyone."""
    owner = await sign_up(client, "owner")
    post_id = await publish(client, resources, owner, "soon private")
    post = 'query($id: ID!) { post(id: $id) { caption } }'
    await flush_caches(resources.redis)  # the profile cold
    async with holding("profiles.rows_read") as hold:
        reader = asyncio.create_task(gql(client, post, {"id": post_id}))
        async with asyncio.timeout(10):
            await hold.wait_reached()
        await make_private(client, owner)
        await flush_caches(resources.redis)
        hold.release()
        assert (await reader)["data"]["post"] == {"caption": "soon private"}  # as it read
    assert (await gql(client, post, {"id": post_id}))["data"]["post"] is None


async def test_a_deleted_post_stays_gone_from_cached_answers_when_redis_fails_after_it(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower's cached answer that showed the post alone (no author field) is ended
    by the fence the delete took before its commit (the post's and its author's epochs:
    an answer showing a post records both), when the move after the commit is lost."""
    owner = await sign_up(client, "owner")
    follower = await sign_up(client, "follower")
    await relate(client, "follow", follower, await user_id(client, "owner"))
    post_id = await publish(client, resources, owner, "regretted")
    alone = "query($id: ID!) { post(id: $id) { caption } }"
    for _ in range(3):  # rendered, stored once its epochs exist, then a hit
        found = await gql(client, alone, {"id": post_id}, token=follower)
        assert found["data"]["post"]["caption"] == "regretted", found
    monkeypatch.setattr(ResponseCache, "changed", redis_fails)  # the move after it lost
    deleted = await gql(client, "mutation($id: ID!) { deletePost(id: $id) }",
                        {"id": post_id}, token=owner)
    monkeypatch.undo()
    assert deleted["data"]["deletePost"], deleted
    assert (await gql(client, alone, {"id": post_id}, token=follower))["data"]["post"] is None

"""The response cache's race windows, forced with checkpoints (issue 21): a reader in the
middle of a revocation, and a change that lands inside another change's fence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.cache.feeds import FeedCache
from pictograph.cache.responses import ResponseCache
from pictograph.checkpoints import holding
from pictograph.feed import policy
from pictograph.resources import Resources
from tests.conftest import Backend
from tests.support.feeds import fan_out, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo, process_media
from tests.support.relations import make_private, owner_and_viewer

PROFILE = """query($name: String!) {
  user(username: $name) { username isPrivate posts(first: 10) { edges { node { caption } } } }
}"""
OWNER = {"name": "owner"}
WAIT = 10  # seconds a test waits for a held operation to arrive before failing
# These hold a change between its fence and its commit while others read: on SQLite its
# transaction holds the one database's write lock, and the readers wait on it.
SERIALIZED = "SQLite serializes the database: nothing reads inside a held transaction"


def needs_concurrent_database(backend: Backend) -> None:
    if backend.name != "services":
        pytest.skip(SERIALIZED)


def failing_when(event: asyncio.Event, method: Callable[..., Awaitable[None]]
                 ) -> Callable[..., Awaitable[None]]:
    async def method_or_outage(*args: Any, **kwargs: Any) -> None:
        if event.is_set():
            raise RedisConnectionError("redis went away")
        await method(*args, **kwargs)

    return method_or_outage


def captions(result: dict[str, Any]) -> list[str]:
    assert not result.get("errors"), result
    user = result["data"]["user"]
    return [edge["node"]["caption"] for edge in user["posts"]["edges"]] if user else []


async def test_a_reader_between_a_revocations_fence_and_its_commit_keeps_nothing(
    client: httpx.AsyncClient, resources: Resources, backend: Backend
) -> None:
    """A stranger reads a public account for the first time while it goes private: the
    read registers after the fence, sees the account as it was before the commit, and
    tries to store it. After the commit nothing of it is served."""
    needs_concurrent_database(backend)
    owner, _, stranger, _ = await owner_and_viewer(client, "made_private")
    await publish(client, resources, owner, "public once")
    async with holding("privacy.fenced") as hold:
        going_private = asyncio.create_task(make_private(client, owner))
        async with asyncio.timeout(WAIT):
            await hold.wait_reached()
        # Not committed yet: the stranger may still see the posts (and renders them).
        before = await gql(client, PROFILE, OWNER, token=stranger)
        hold.release()
        await going_private
    assert captions(before) in ([], ["public once"])
    for _ in range(2):
        assert captions(await gql(client, PROFILE, OWNER, token=stranger)) == []


async def test_a_reader_held_before_its_store_across_going_private_is_never_served(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """A stranger's read of a public account, held after its reads and before its store;
    the owner goes private meanwhile. The stale answer recorded the owner's epoch from
    before the change, which moved: the next reads show nothing of the posts."""
    owner, _, stranger, _ = await owner_and_viewer(client, "made_private")
    await publish(client, resources, owner, "public once")
    await gql(client, "{ viewer { id } }", token=stranger)  # the token is known from here
    hits = resources.metrics.response_cache.labels("hit")
    async with holding("responses.rendered") as hold:
        reading = asyncio.create_task(gql(client, PROFILE, OWNER, token=stranger))
        async with asyncio.timeout(WAIT):
            await hold.wait_reached()
        await make_private(client, owner)
        hold.release()
        assert captions(await reading) == ["public once"]  # read before the change
    before = hits._value.get()
    assert captions(await gql(client, PROFILE, OWNER, token=stranger)) == []
    assert hits._value.get() == before  # rendered again, not the stale answer
    for _ in range(2):
        assert captions(await gql(client, PROFILE, OWNER, token=stranger)) == []


async def test_a_reader_of_a_cached_profile_just_before_going_private_stores_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The issue's window: a stranger reads the owner's profile from the profile cache
    and is held right after that read; the owner goes private; the stranger's answer,
    built from the public profile, must not be stored for later reads."""
    owner, _, stranger, _ = await owner_and_viewer(client, "made_private")
    await publish(client, resources, owner, "public once")
    other = await sign_up(client, "other")
    await gql(client, PROFILE, OWNER, token=other)  # the profile and username, cached
    await gql(client, "{ viewer { id } }", token=stranger)  # the token is known from here
    async with holding("versions.values_read") as hold:
        reading = asyncio.create_task(gql(client, PROFILE, OWNER, token=stranger))
        async with asyncio.timeout(WAIT):
            await hold.wait_reached()  # the cached profile read: still public
        await make_private(client, owner)
        hold.release()
        await reading
    for _ in range(2):
        assert captions(await gql(client, PROFILE, OWNER, token=stranger)) == []


async def test_another_changes_move_does_not_end_a_fence_whose_own_move_fails(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
) -> None:
    """R2 (the owner removes the viewer) fences the viewer and is held before its commit.
    R1, a celebrity's post reaching the fan-out, moves the viewer's version (the viewer
    read the celebrity). The viewer reads the owner meanwhile. R2 commits, and its own
    move fails. The viewer must not be served what was rendered before R2's commit."""
    needs_concurrent_database(backend)
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 1)
    monkeypatch.setattr(policy, "CELEBRITY_GRACE", 0)
    owner, _, viewer, viewer_id = await owner_and_viewer(client, "removed")
    star = await sign_up(client, "star")
    await relate_ok(client, "follow", viewer, await user_id(client, "star"))
    await publish(client, resources, owner, "secret")
    await publish(client, resources, star, "first")  # a celebrity from here
    # The star's next post, processed: only its fan-out (R1's move) is left to run.
    posted = await post_photo(client, star, jpeg(64, 48), caption="second")
    assert not posted.get("errors"), posted
    await process_media(resources)
    # The viewer is shown the star (registered with them) since the post was processed.
    star_posts = captions(await gql(client, PROFILE, {"name": "star"}, token=viewer))
    assert star_posts == ["second", "first"]

    # R2's writes that would move the viewer's version after its commit fail: its move,
    # and the first pages it drops (which drop the viewer's unfenced responses too).
    moves_fail = asyncio.Event()
    for owner_class, name in ((ResponseCache, "changed"), (FeedCache, "drop_pages")):
        monkeypatch.setattr(owner_class, name, failing_when(moves_fail,
                                                            getattr(owner_class, name)))
    async with holding("graph.fenced") as hold:
        removing = asyncio.create_task(
            relate_ok(client, "removeFollower", owner, viewer_id))
        async with asyncio.timeout(WAIT):
            await hold.wait_reached()
        # R1: the star's post, its readers moved. (A consumer's step may be a pass that
        # claims stale messages and returns 0: ask again.)
        assert sum([await fan_out(resources) for _ in range(3)]) == 1
        for _ in range(2):  # R2 not committed: rendered, and perhaps stored
            assert captions(await gql(client, PROFILE, OWNER, token=viewer)) == ["secret"]
        moves_fail.set()  # R2's own move after its commit fails
        hold.release()
        await removing
    assert captions(await gql(client, PROFILE, OWNER, token=viewer)) == []

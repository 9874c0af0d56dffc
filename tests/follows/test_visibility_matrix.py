"""The whole matrix: public/private owner by every relation the viewer can be in, through
the API and through the one visibility authority, on a cold and on a warm cache."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from pictograph.cache.graph import GraphCache
from pictograph.graph.reader import FollowGraph
from pictograph.models import User
from pictograph.records import PostRecord, UserRecord
from pictograph.resources import Resources
from pictograph.visibility import can_view_photo, can_view_posts, can_view_profile
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.redis_state import flush_caches
from tests.support.relations import EXPECTED, approach, depart, make_private

CASES = [(state, privacy) for state, by_privacy in EXPECTED.items() for privacy in by_privacy]

PROBE = """query($u: String!) {
  user(username: $u) { viewerFollowStatus followers { edges { node { username } } } }
}"""


async def _arrange(client: httpx.AsyncClient, state: str, privacy: str) -> str | None:
    """Makes owner `owner`, a follower `witness`, and a viewer in `state`; returns the
    viewer's token."""
    owner = await sign_up(client, "owner")
    witness = await sign_up(client, "witness")
    owner_id = await user_id(client, "owner")
    await relate_ok(client, "follow", witness, owner_id)
    if privacy == "private":
        await make_private(client, owner)
    if state == "self":
        return owner
    if state == "anonymous":
        return None
    viewer = await sign_up(client, "viewer")
    viewer_id = await user_id(client, "viewer")
    await approach(client, state, owner, owner_id, viewer, viewer_id)
    await depart(client, state, owner, owner_id, viewer, viewer_id)
    return viewer


def photo_of(author_id: int) -> PostRecord:
    """A READY post of the author's (the gate looks at its author and status)."""
    return PostRecord(id=1, author_id=author_id, caption="", status="READY",
                      failure_reason=None, created_at=datetime.now(UTC), variants={})


@pytest.mark.parametrize(("state", "privacy"), CASES)
async def test_visibility_matrix(
    client: httpx.AsyncClient, resources: Resources, state: str, privacy: str
) -> None:
    token = await _arrange(client, state, privacy)
    profile, posts, media, status = EXPECTED[state][privacy]

    owner = UserRecord.from_model(await User.get(username="owner"))
    viewer_row = await User.get_or_none(username="viewer")
    viewer_id = {"self": owner.id, "anonymous": None}.get(
        state, viewer_row.id if viewer_row else None
    )
    for cache in ("warm", "cold"):
        if cache == "cold":
            await flush_caches(resources.redis)
        graph = FollowGraph(GraphCache(resources.redis))
        assert await can_view_profile(graph, viewer_id, owner.id) is profile, cache
        assert await can_view_posts(graph, viewer_id, owner) is posts, cache
        assert await can_view_photo(graph, viewer_id, photo_of(owner.id)) is media, cache

    seen = (await gql(client, PROBE, {"u": "owner"}, token=token))["data"]["user"]
    assert (seen is not None) is profile
    if seen is not None:
        assert seen["viewerFollowStatus"] == status
        assert bool(seen["followers"]["edges"]) is posts

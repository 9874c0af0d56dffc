"""Queries on a WebSocket that stays open: each operation starts from fresh state, exactly
like an HTTP request, so a change between two operations on one socket shows at once.

The socket is opened and warmed (every read answered once) before the change; the change
is made elsewhere (HTTP); the same reads on the same socket must then show nothing of the
author, including a post made after the change."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.resources import Resources
from tests.support.feeds import publish
from tests.support.graphql import gql, sign_up, user_id
from tests.support.relations import make_private, owner_and_viewer, revoke
from tests.support.server import served
from tests.support.sockets import open_socket

READ = """query($u: String!, $id: ID!) {
  user(username: $u) { posts(first: 20) { edges { node { id caption } } } }
  post(id: $id) { caption media(size: THUMBNAIL) { url } }
  node(id: $id) { id }
}"""
FEED = "{ feed(first: 20) { edges { node { caption } } } }"
CHANGES = ("unfollowed", "removed", "blocked_by_owner", "blocking_owner", "made_private")


def captions(data: dict) -> set[str]:
    shown = {edge["node"]["caption"] for edge in (data["user"] or {"posts": {"edges": []}})
             ["posts"]["edges"]}
    if data["post"]:
        shown.add(data["post"]["caption"])
    return shown


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_between_two_operations_on_one_socket_shows_at_once(
    client: httpx.AsyncClient, app: Starlette, resources: Resources, change: str
) -> None:
    owner, owner_id, viewer, viewer_id = await owner_and_viewer(client, change)
    before = await publish(client, resources, owner, "before the change")

    async with served(app) as base, open_socket(base, viewer) as socket:
        warm = await socket.execute(READ, {"u": "owner", "id": before})
        assert not warm.get("errors"), warm
        assert captions(warm["data"]) == {"before the change"}
        if change != "made_private":
            feed = await socket.execute(FEED)
            assert [e["node"]["caption"] for e in feed["data"]["feed"]["edges"]] == [
                "before the change"]

        await revoke(client, change, owner, owner_id, viewer, viewer_id)
        after = await publish(client, resources, owner, "after the change")

        for post_id in (before, after):
            result = await socket.execute(READ, {"u": "owner", "id": post_id})
            assert not result.get("errors"), result
            assert captions(result["data"]) == set(), (change, result)
            assert result["data"]["node"] is None
        feed = await socket.execute(FEED)
        assert feed["data"]["feed"]["edges"] == []
        # The same reads over HTTP agree: the socket knows no more than a request.
        over_http = await gql(client, READ, {"u": "owner", "id": before}, token=viewer)
        assert captions(over_http["data"]) == set()


async def test_a_mutation_on_a_socket_does_not_leave_its_reads_to_the_next_operation(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    owner = await sign_up(client, "owner")
    owner_id = await user_id(client, "owner")
    viewer = await sign_up(client, "viewer")
    await make_private(client, owner)
    post = await publish(client, resources, owner, "private")
    async with served(app) as base, open_socket(base, viewer) as socket:
        hidden = await socket.execute(READ, {"u": "owner", "id": post})
        assert captions(hidden["data"]) == set()
        requested = await socket.execute(
            "mutation($id: ID!) { follow(userId: $id) { status } }", {"id": owner_id})
        assert requested["data"]["follow"]["status"] == "REQUESTED"
        viewer_id = await user_id(client, "viewer")
        approved = await gql(client, "mutation($id: ID!) { approveFollowRequest(userId: $id)"
                             " { status } }", {"id": viewer_id}, token=owner)
        assert not approved.get("errors"), approved
        shown = await socket.execute(READ, {"u": "owner", "id": post})
        assert captions(shown["data"]) == {"private"}

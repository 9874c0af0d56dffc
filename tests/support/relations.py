"""Every relation a viewer can be in toward an owner, and the owner toward the viewer
(followed_by, requested_by: what the owner does never opens the owner's posts), what each
may see, and the API calls that put a viewer there. tests/access/test_two_way_matrix.py
crosses both directions against the oracle's model."""

from __future__ import annotations

import httpx

from tests.support.graphql import gql, relate_ok

# state: (profile visible, posts visible, media visible, viewerFollowStatus) per privacy
EXPECTED = {
    "self": {"public": (True, True, True, "SELF"), "private": (True, True, True, "SELF")},
    "anonymous": {"public": (True, True, False, "NONE"), "private": (True, False, False, "NONE")},
    "none": {"public": (True, True, False, "NONE"), "private": (True, False, False, "NONE")},
    "requested": {"private": (True, False, False, "REQUESTED")},
    "following": {"public": (True, True, True, "FOLLOWING"),
                  "private": (True, True, True, "FOLLOWING")},
    "unfollowed": {"public": (True, True, False, "NONE"),
                   "private": (True, False, False, "NONE")},
    "removed": {"public": (True, True, False, "NONE"), "private": (True, False, False, "NONE")},
    "blocked_by_owner": {"public": (False, False, False, "BLOCKED"),
                         "private": (False, False, False, "BLOCKED")},
    "blocking_owner": {"public": (True, False, False, "BLOCKED"),
                       "private": (True, False, False, "BLOCKED")},
    # The owner follows the viewer, who does not follow back (the viewer is public).
    "followed_by": {"public": (True, True, False, "NONE"),
                    "private": (True, False, False, "NONE")},
    # The owner asked to follow the viewer (private), who has not answered.
    "requested_by": {"public": (True, True, False, "NONE"),
                     "private": (True, False, False, "NONE")},
}
# States reached by following first (and being approved, where the owner is private) and
# then, for all but "following", one change that ends it.
FOLLOWED_FIRST = ("following", "unfollowed", "removed", "blocked_by_owner", "blocking_owner")


async def make_private(client: httpx.AsyncClient, token: str) -> None:
    result = await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { id } }",
                       token=token)
    assert not result.get("errors"), result


async def approach(client: httpx.AsyncClient, state: str, owner: str, owner_id: str,
                   viewer: str, viewer_id: str) -> None:
    """The first half of a state: a follow (approved if the owner is private) or a request,
    by the viewer or, for the owner's own states, by the owner."""
    if state == "followed_by":
        assert await relate_ok(client, "follow", owner, viewer_id) == "FOLLOWING"
    elif state == "requested_by":
        await make_private(client, viewer)
        assert await relate_ok(client, "follow", owner, viewer_id) == "REQUESTED"
    elif state == "requested":
        assert await relate_ok(client, "follow", viewer, owner_id) == "REQUESTED"
    elif state in FOLLOWED_FIRST:
        if await relate_ok(client, "follow", viewer, owner_id) == "REQUESTED":
            await relate_ok(client, "approveFollowRequest", owner, viewer_id)


async def depart(client: httpx.AsyncClient, state: str, owner: str, owner_id: str,
                 viewer: str, viewer_id: str) -> None:
    """The second half: the change that ends a follow, by either side."""
    if state == "unfollowed":
        await relate_ok(client, "unfollow", viewer, owner_id)
    elif state == "removed":
        await relate_ok(client, "removeFollower", owner, viewer_id)
    elif state == "blocked_by_owner":
        await relate_ok(client, "block", owner, viewer_id)
    elif state == "blocking_owner":
        await relate_ok(client, "block", viewer, owner_id)


async def follower_of(client: httpx.AsyncClient, follower: str, author: str) -> tuple[str, str]:
    """Signs up both (the author public); the follower follows. Their tokens, in order."""
    from tests.support.graphql import sign_up, user_id

    follower_token = await sign_up(client, follower)
    author_token = await sign_up(client, author)
    await relate_ok(client, "follow", follower_token, await user_id(client, author))
    return follower_token, author_token


async def owner_and_viewer(client: httpx.AsyncClient, change: str
                           ) -> tuple[str, str, str, str]:
    """owner and viewer (token, id each) set up for `change`: a private owner with the
    viewer as approved follower, or for "made_private" a public owner and a stranger."""
    from tests.support.graphql import sign_up, user_id

    owner = await sign_up(client, "owner")
    owner_id = await user_id(client, "owner")
    viewer = await sign_up(client, "viewer")
    viewer_id = await user_id(client, "viewer")
    if change != "made_private":
        await make_private(client, owner)
        await approach(client, "following", owner, owner_id, viewer, viewer_id)
    return owner, owner_id, viewer, viewer_id


async def revoke(client: httpx.AsyncClient, change: str, owner: str, owner_id: str,
                 viewer: str, viewer_id: str) -> None:
    """The change owner_and_viewer was set up for."""
    if change == "made_private":
        await make_private(client, owner)
    else:
        await depart(client, change, owner, owner_id, viewer, viewer_id)

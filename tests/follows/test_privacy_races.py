"""Going public accepts every request, even one that arrives while it happens, and a
request left on a public account becomes a follow when its sender follows again."""

from __future__ import annotations

import asyncio

import httpx

from pictograph.checkpoints import holding
from pictograph.models import User
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.relations import make_private

GO_PUBLIC = "mutation { updateProfile(input: {isPrivate: false}) { isPrivate } }"
STATUS = 'query { user(username: "owner") { viewerFollowStatus followerCount } }'


async def test_a_request_made_while_the_owner_goes_public_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client, "owner")
    await make_private(client, owner)
    owner_id = await user_id(client, "owner")
    early, late = await sign_up(client, "early"), await sign_up(client, "late")
    assert await relate_ok(client, "follow", early, owner_id) == "REQUESTED"
    async with holding("privacy.requesters_read") as hold:
        going_public = asyncio.create_task(gql(client, GO_PUBLIC, token=owner))
        async with asyncio.timeout(10):
            await hold.wait_reached()  # the requests were read; not yet accepted
        assert await relate_ok(client, "follow", late, owner_id) == "REQUESTED"
        hold.release()
        assert (await going_public)["data"] == {"updateProfile": {"isPrivate": False}}
    for token in (early, late):
        answer = await gql(client, STATUS, token=token)
        assert answer["data"]["user"] == {"viewerFollowStatus": "FOLLOWING",
                                          "followerCount": 2}


async def test_following_again_turns_a_request_left_on_a_public_account_into_a_follow(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client, "owner")
    await make_private(client, owner)
    fan = await sign_up(client, "fan")
    assert await relate_ok(client, "follow", fan, await user_id(client, "owner")) == (
        "REQUESTED")
    # As a request stranded by an earlier version was left: public, still REQUESTED.
    await User.filter(username="owner").update(is_private=False)
    await gql(client, "mutation { updateProfile(input: {bio: \"refresh\"}) { bio } }",
              token=owner)  # the cached profile says public too
    assert await relate_ok(client, "follow", fan, await user_id(client, "owner")) == (
        "FOLLOWING")
    answer = await gql(client, STATUS, token=fan)
    assert answer["data"]["user"] == {"viewerFollowStatus": "FOLLOWING", "followerCount": 1}

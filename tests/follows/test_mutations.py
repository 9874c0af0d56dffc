from __future__ import annotations

import asyncio

import httpx

from pictograph.models import Follow, User
from tests.support.graphql import error_codes, gql, relate, relate_ok, sign_up, user_id

STATUS = """query($u: String!) {
  user(username: $u) { viewerFollowStatus followsViewer followerCount followingCount }
}"""


async def status_of(client: httpx.AsyncClient, token: str, username: str) -> dict | None:
    return (await gql(client, STATUS, {"u": username}, token=token))["data"]["user"]


async def test_following_a_public_account_is_immediate_and_idempotent(
    client: httpx.AsyncClient,
) -> None:
    ann = await sign_up(client, "ann")
    await sign_up(client, "bob")
    bob = await user_id(client, "bob")
    result = await relate(client, "follow", ann, bob)
    assert result["data"]["follow"] == {
        "status": "FOLLOWING",
        "user": {"username": "bob", "followerCount": 1, "followingCount": 0},
    }
    assert await relate_ok(client, "follow", ann, bob) == "FOLLOWING"
    assert await Follow.all().count() == 1
    assert (await status_of(client, ann, "ann"))["followingCount"] == 1
    bob_token = await sign_up(client, "bobby")  # a third party sees the counts too
    assert (await status_of(client, bob_token, "bob"))["followerCount"] == 1
    assert await relate_ok(client, "unfollow", ann, bob) == "NONE"
    assert await relate_ok(client, "unfollow", ann, bob) == "NONE"
    assert await status_of(client, ann, "bob") == {
        "viewerFollowStatus": "NONE",
        "followsViewer": False,
        "followerCount": 0,
        "followingCount": 0,
    }


async def test_private_accounts_approve_their_followers(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner")
    fan = await sign_up(client, "fan")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
              token=owner)
    owner_id, fan_id = await user_id(client, "owner"), await user_id(client, "fan")
    assert await relate_ok(client, "follow", fan, owner_id) == "REQUESTED"
    assert await relate_ok(client, "follow", fan, owner_id) == "REQUESTED"
    assert (await status_of(client, fan, "owner"))["followerCount"] == 0
    requests = await gql(
        client, "{ followRequests { edges { node { username } } } }", token=owner
    )
    assert requests["data"]["followRequests"]["edges"] == [{"node": {"username": "fan"}}]
    # The payload is the approver's own relation to the requester.
    assert await relate_ok(client, "approveFollowRequest", owner, fan_id) == "NONE"
    assert await relate_ok(client, "approveFollowRequest", owner, fan_id) == "NONE"
    assert (await status_of(client, fan, "owner"))["viewerFollowStatus"] == "FOLLOWING"
    assert (await status_of(client, owner, "fan"))["followsViewer"] is True
    assert (await status_of(client, owner, "owner"))["followerCount"] == 1
    empty = await gql(client, "{ followRequests { edges { node { username } } } }", token=owner)
    assert empty["data"]["followRequests"]["edges"] == []


async def test_reject_and_withdraw_requests(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "closed")
    fan = await sign_up(client, "hopeful")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
              token=owner)
    owner_id, fan_id = await user_id(client, "closed"), await user_id(client, "hopeful")
    await relate_ok(client, "follow", fan, owner_id)
    assert await relate_ok(client, "rejectFollowRequest", owner, fan_id) == "NONE"
    assert await relate_ok(client, "rejectFollowRequest", owner, fan_id) == "NONE"
    assert (await status_of(client, fan, "closed"))["viewerFollowStatus"] == "NONE"
    assert await relate_ok(client, "follow", fan, owner_id) == "REQUESTED"
    assert await relate_ok(client, "unfollow", fan, owner_id) == "NONE"
    assert await Follow.all().count() == 0
    result = await relate(client, "approveFollowRequest", owner, fan_id)
    assert error_codes(result) == ["NOT_FOUND"]


async def test_remove_follower(client: httpx.AsyncClient) -> None:
    star = await sign_up(client, "star")
    fan = await sign_up(client, "pest")
    star_id, fan_id = await user_id(client, "star"), await user_id(client, "pest")
    await relate_ok(client, "follow", fan, star_id)
    assert await relate_ok(client, "removeFollower", star, fan_id) == "NONE"
    assert await relate_ok(client, "removeFollower", star, fan_id) == "NONE"
    assert (await status_of(client, fan, "star"))["viewerFollowStatus"] == "NONE"
    assert (await status_of(client, star, "star"))["followerCount"] == 0


async def test_block_ends_follows_both_ways_and_hides_the_blocker(
    client: httpx.AsyncClient,
) -> None:
    alice = await sign_up(client, "alice")
    mallory = await sign_up(client, "mallory")
    alice_id, mallory_id = await user_id(client, "alice"), await user_id(client, "mallory")
    await relate_ok(client, "follow", alice, mallory_id)
    await relate_ok(client, "follow", mallory, alice_id)
    assert await relate_ok(client, "block", alice, mallory_id) == "BLOCKED"
    assert await relate_ok(client, "block", alice, mallory_id) == "BLOCKED"
    assert await Follow.all().count() == 0
    counts = await User.all().values_list("follower_count", "following_count")
    assert set(counts) == {(0, 0)}
    # The blocked one no longer finds the blocker, and cannot follow again.
    assert await status_of(client, mallory, "alice") is None
    assert error_codes(await relate(client, "follow", mallory, alice_id)) == ["NOT_FOUND"]
    # The blocker still sees the profile, marked BLOCKED, and must unblock to follow.
    assert (await status_of(client, alice, "mallory"))["viewerFollowStatus"] == "BLOCKED"
    assert error_codes(await relate(client, "follow", alice, mallory_id)) == ["FORBIDDEN"]
    assert await relate_ok(client, "unblock", alice, mallory_id) == "NONE"
    assert await relate_ok(client, "unblock", alice, mallory_id) == "NONE"
    assert await relate_ok(client, "follow", mallory, alice_id) == "FOLLOWING"


async def test_block_removes_pending_requests(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "guarded")
    fan = await sign_up(client, "insistent")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
              token=owner)
    await relate_ok(client, "follow", fan, await user_id(client, "guarded"))
    await relate_ok(client, "block", owner, await user_id(client, "insistent"))
    requests = await gql(client, "{ followRequests { edges { cursor } } }", token=owner)
    assert requests["data"]["followRequests"]["edges"] == []


async def test_bad_targets(client: httpx.AsyncClient) -> None:
    me = await sign_up(client, "myself")
    my_id = await user_id(client, "myself")
    for mutation in ("follow", "block"):
        assert error_codes(await relate(client, mutation, me, my_id)) == ["BAD_USER_INPUT"]
    for junk in ("nope", "VXNlcjo5OTk5OTk", my_id + "x"):
        assert error_codes(await relate(client, "follow", me, junk)) == ["NOT_FOUND"]
    assert error_codes(await gql(client, "mutation { follow(userId: \"x\") { status } }")) == [
        "UNAUTHENTICATED"
    ]


async def test_going_public_accepts_pending_requests(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "shy")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
              token=owner)
    fans = [await sign_up(client, f"fan{i}") for i in range(3)]
    shy = await user_id(client, "shy")
    for fan in fans:
        assert await relate_ok(client, "follow", fan, shy) == "REQUESTED"
    await gql(client, "mutation { updateProfile(input: {isPrivate: false}) { isPrivate } }",
              token=owner)
    for fan in fans:
        assert (await status_of(client, fan, "shy"))["viewerFollowStatus"] == "FOLLOWING"
    assert (await status_of(client, owner, "shy"))["followerCount"] == 3
    assert (await status_of(client, fans[0], "fan0"))["followingCount"] == 1


async def test_counts_stay_exact_under_concurrent_follows_and_unfollows(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "popular")
    target = await user_id(client, "popular")
    fans = [await sign_up(client, f"crowd{i}") for i in range(12)]
    await asyncio.gather(*(relate_ok(client, "follow", fan, target) for fan in fans))
    await asyncio.gather(
        *(relate_ok(client, "unfollow", fan, target) for fan in fans[:5]),
        *(relate_ok(client, "follow", fan, target) for fan in fans[5:]),
    )
    row = await User.get(username="popular")
    assert row.follower_count == await Follow.filter(followee_id=row.id).count() == 7

from __future__ import annotations

import httpx

from tests.support.graphql import error_codes, gql, relate_ok, sign_up, user_id

FOLLOWERS = """
query($u: String!, $first: Int, $after: String) {
  user(username: $u) {
    followers(first: $first, after: $after) {
      edges { cursor node { username } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""
FOLLOWING = """
query($u: String!) { user(username: $u) { following { edges { node { username } } } } }
"""


async def followers_page(client, token, username, first=None, after=None):
    result = await gql(
        client, FOLLOWERS, {"u": username, "first": first, "after": after}, token=token
    )
    assert not result.get("errors"), result
    return result["data"]["user"]["followers"]


async def test_lists_are_newest_first_and_cursors_survive_new_follows(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "celeb")
    celeb = await user_id(client, "celeb")
    fans = {f"f{i:02d}": await sign_up(client, f"f{i:02d}") for i in range(7)}
    for token in fans.values():
        await relate_ok(client, "follow", token, celeb)
    viewer = fans["f00"]
    first = await followers_page(client, viewer, "celeb", first=3)
    assert [e["node"]["username"] for e in first["edges"]] == ["f06", "f05", "f04"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    # Someone follows, someone already seen leaves: the next page neither repeats nor skips.
    late = await sign_up(client, "late")
    await relate_ok(client, "follow", late, celeb)
    await relate_ok(client, "unfollow", fans["f05"], celeb)
    second = await followers_page(
        client, viewer, "celeb", first=3, after=first["pageInfo"]["endCursor"]
    )
    assert [e["node"]["username"] for e in second["edges"]] == ["f03", "f02", "f01"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    third = await followers_page(
        client, viewer, "celeb", first=3, after=second["pageInfo"]["endCursor"]
    )
    assert [e["node"]["username"] for e in third["edges"]] == ["f00"]
    assert third["pageInfo"]["hasNextPage"] is False
    following = await gql(client, FOLLOWING, {"u": "f03"}, token=viewer)
    assert following["data"]["user"]["following"]["edges"] == [{"node": {"username": "celeb"}}]


async def test_first_is_capped_and_checked(client: httpx.AsyncClient) -> None:
    token = await sign_up(client, "lonely")
    page = await followers_page(client, token, "lonely", first=500)
    assert page["edges"] == [] and page["pageInfo"]["endCursor"] is None
    negative = await gql(client, FOLLOWERS, {"u": "lonely", "first": -1}, token=token)
    assert error_codes(negative) == ["BAD_USER_INPUT"]
    bad_cursor = await gql(client, FOLLOWERS, {"u": "lonely", "after": "zzz"}, token=token)
    assert error_codes(bad_cursor) == ["BAD_USER_INPUT"]


async def test_a_page_holds_at_most_one_hundred(client: httpx.AsyncClient, resources) -> None:
    from pictograph.models import Follow, FollowState, User

    token = await sign_up(client, "hub")
    hub = await User.get(username="hub")
    users = [User(username=f"bulk{i:03d}", password_hash="x") for i in range(105)]
    await User.bulk_create(users)
    await Follow.bulk_create(
        [Follow(follower_id=u.id, followee_id=hub.id, state=FollowState.ACCEPTED) for u in users]
    )
    page = await followers_page(client, token, "hub", first=150)
    assert len(page["edges"]) == 100 and page["pageInfo"]["hasNextPage"] is True


async def test_private_lists_are_for_followers_only(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "hidden")
    friend = await sign_up(client, "friend")
    stranger = await sign_up(client, "stranger")
    await gql(client, "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }",
              token=owner)
    await relate_ok(client, "follow", friend, await user_id(client, "hidden"))
    await relate_ok(client, "approveFollowRequest", owner, await user_id(client, "friend"))
    assert len((await followers_page(client, owner, "hidden"))["edges"]) == 1
    assert len((await followers_page(client, friend, "hidden"))["edges"]) == 1
    assert (await followers_page(client, stranger, "hidden"))["edges"] == []
    assert (await followers_page(client, None, "hidden"))["edges"] == []

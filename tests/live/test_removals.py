"""POST_REMOVED goes only to subscribers who could see the post before the change: its id
tells when it was made, which is not for strangers to learn."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from tests.support.feeds import fan_out, publish
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo
from tests.support.relations import follower_of, make_private
from tests.support.server import served
from tests.support.sockets import (
    SENTINEL,
    open_socket,
    until_subscribed,
    updates_until_sentinel,
)

FEED_UPDATES = "subscription { feedUpdates { kind postId } }"


async def listening(client: httpx.AsyncClient, resources: Resources, username: str) -> None:
    user = decode_id_of(await user_id(client, username), "User")
    await until_subscribed(resources.redis, user)


@pytest.mark.parametrize("who_blocks", ["owner", "stranger"])
async def test_a_block_between_strangers_says_nothing_of_either_side_s_posts(
    client: httpx.AsyncClient, app: Starlette, resources: Resources, who_blocks: str
) -> None:
    owner = await sign_up(client, "owner")
    stranger = await sign_up(client, "stranger")
    await make_private(client, owner)
    for caption in ("one", "two"):
        await publish(client, resources, owner, caption)
        await publish(client, resources, stranger, caption)
    blocker, blocked = (owner, "stranger") if who_blocks == "owner" else (stranger, "owner")
    async with served(app) as base, open_socket(base, stranger) as theirs, \
            open_socket(base, owner) as mine:
        async with theirs.subscription(FEED_UPDATES) as stranger_updates, \
                mine.subscription(FEED_UPDATES) as owner_updates:
            await listening(client, resources, "stranger")
            await listening(client, resources, "owner")
            await relate_ok(client, "block", blocker, await user_id(client, blocked))
            stranger_mark = await publish(client, resources, stranger, SENTINEL)
            owner_mark = await publish(client, resources, owner, SENTINEL)
            assert await updates_until_sentinel(stranger_updates, stranger_mark) == []
            assert await updates_until_sentinel(owner_updates, owner_mark) == []


async def test_a_follower_who_is_blocked_hears_the_posts_they_saw_leave(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    fan, owner = await follower_of(client, "fan", "owner")
    seen = await publish(client, resources, owner, "seen")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await listening(client, resources, "fan")
        await relate_ok(client, "block", owner, await user_id(client, "fan"))
        mark = await publish(client, resources, fan, SENTINEL)
        assert await updates_until_sentinel(updates, mark) == [
            {"kind": "POST_REMOVED", "postId": seen}]


async def test_deleting_a_post_that_was_never_ready_tells_no_one(
    client: httpx.AsyncClient, app: Starlette, resources: Resources
) -> None:
    fan, owner = await follower_of(client, "fan", "owner")
    async with served(app) as base, open_socket(base, fan) as socket, \
            socket.subscription(FEED_UPDATES) as updates:
        await listening(client, resources, "fan")
        created = await post_photo(client, owner, jpeg(64, 48), caption="unfinished")
        post_id = created["data"]["createPost"]["id"]
        deleted = await gql(client, "mutation($id: ID!) { deletePost(id: $id) }",
                            {"id": post_id}, token=owner)
        assert deleted["data"] == {"deletePost": True}, deleted
        await fan_out(resources)
        mark = await publish(client, resources, fan, SENTINEL)
        assert await updates_until_sentinel(updates, mark) == []

"""The feed at its edges: caps, trimming, celebrities, stale events and caches."""

from __future__ import annotations

import httpx
import pytest

from pictograph.events import Unfollowed
from pictograph.feed import policy
from pictograph.feed.policy import HomeFeed
from pictograph.models import User
from pictograph.resources import Resources
from pictograph.workers.fanout import apply_event
from tests.support.feeds import fan_out, feed_captions, publish
from tests.support.graphql import relate_ok, sign_up, user_id


async def _all_captions(client: httpx.AsyncClient, token: str, first: int = 2) -> list[str]:
    captions: list[str] = []
    after = None
    while True:
        page, info = await feed_captions(client, token, first=first, after=after)
        captions += page
        if not info["hasNextPage"]:
            return captions
        after = info["endCursor"]


async def _make_celebrity(resources: Resources, monkeypatch: pytest.MonkeyPatch,
                          username: str) -> None:
    monkeypatch.setattr(resources.settings, "celebrity_threshold", 1)
    await resources.redis.delete("celebrities")
    await User.filter(username=username).update(follower_count=1)


async def test_a_celebrity_sees_their_own_posts(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    star = await sign_up(client, "star")
    await feed_captions(client, star)  # the star's feed is complete and cached
    await _make_celebrity(resources, monkeypatch, "star")
    await publish(client, resources, star, "me, myself")
    assert (await feed_captions(client, star))[0] == ["me, myself"]


async def test_deep_pages_reach_past_every_cap(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "FEED_CAP", 3)
    fan = await sign_up(client, "deep")
    star = await sign_up(client, "bigstar")
    friend = await sign_up(client, "friend")
    await relate_ok(client, "follow", fan, await user_id(client, "bigstar"))
    await relate_ok(client, "follow", fan, await user_id(client, "friend"))
    await fan_out(resources)
    await _make_celebrity(resources, monkeypatch, "bigstar")
    for i in range(5):
        await publish(client, resources, star, f"s{i}")
        await publish(client, resources, friend, f"f{i}")
    expected = [f"{who}{i}" for i in reversed(range(5)) for who in ("f", "s")]
    assert await _all_captions(client, fan) == expected
    # The cleanup of an unfollow must not cut off what lies below a trimmed feed.
    other = await sign_up(client, "other")
    await relate_ok(client, "follow", fan, await user_id(client, "other"))
    await fan_out(resources)
    await relate_ok(client, "unfollow", fan, await user_id(client, "other"))
    await fan_out(resources)
    assert await _all_captions(client, fan) == expected
    del other


async def test_a_run_of_hidden_entries_does_not_end_the_feed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan = await sign_up(client, "patient")
    keep = await sign_up(client, "keeper")
    noisy = await sign_up(client, "noisy")
    for name in ("keeper", "noisy"):
        await relate_ok(client, "follow", fan, await user_id(client, name))
    await fan_out(resources)
    await publish(client, resources, keep, "worth it")
    for i in range(30):
        await publish(client, resources, noisy, f"noise{i}")
    # Unfollowed just now: no worker has tidied the 30 entries yet.
    await relate_ok(client, "unfollow", fan, await user_id(client, "noisy"))
    page, info = await feed_captions(client, fan, first=1)
    assert page == ["worth it"] and info["hasNextPage"] is False


async def test_follow_events_applied_out_of_order_change_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    fan = await sign_up(client, "fickle")
    author = await sign_up(client, "steady")
    await publish(client, resources, author, "kept")
    await relate_ok(client, "follow", fan, await user_id(client, "steady"))
    await relate_ok(client, "unfollow", fan, await user_id(client, "steady"))
    await relate_ok(client, "follow", fan, await user_id(client, "steady"))
    await fan_out(resources)
    fan_row, author_row = await User.get(username="fickle"), await User.get(username="steady")
    feed = HomeFeed(resources)
    # A late copy of the old "unfollowed" event arrives after the re-follow.
    await apply_event(feed, Unfollowed(a=fan_row.id, b=author_row.id, follower=fan_row.id,
                                       followee=author_row.id))
    assert (await feed_captions(client, fan))[0] == ["kept"]


async def test_a_celebrity_post_shows_despite_a_cached_first_page(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan = await sign_up(client, "waiting")
    star = await sign_up(client, "famous")
    await relate_ok(client, "follow", fan, await user_id(client, "famous"))
    await fan_out(resources)
    await _make_celebrity(resources, monkeypatch, "famous")
    await publish(client, resources, star, "first")
    assert (await feed_captions(client, fan))[0] == ["first"]  # the page is cached now
    await publish(client, resources, star, "second")
    assert (await feed_captions(client, fan))[0] == ["second", "first"]

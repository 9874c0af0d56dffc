"""`pictograph seed` at a tiny size: exact counts, celebrities, a demo login with a feed."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from pictograph.cache import keys
from pictograph.cache.feeds import FeedCache
from pictograph.ids import id_node, id_time_ms
from pictograph.models import Follow, FollowState, MediaVariant, Post, PostStatus, Upload, User
from pictograph.resources import Resources
from pictograph.seed import DEMO_PASSWORD, SeedRefused, seed
from tests.support.feeds import FEED
from tests.support.graphql import gql
from tests.support.photos import fetch

THRESHOLD = 10
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token user { username } }
}"""


async def test_seed_makes_a_consistent_network_a_demo_user_can_browse(
    resources: Resources, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "celebrity_threshold", THRESHOLD)
    await FeedCache(resources.redis).add([keys.home_feed(1)], [1])  # a stale feed of an old run

    report = await seed(resources, users=60, posts=200, celebrities=2, seed=7,
                        progress=False, photos=4)

    assert await resources.redis.exists(keys.home_feed(1)) == 0
    assert (report.users, report.posts) == (60, 200)
    assert await User.all().count() == 60
    assert await Post.filter(status=PostStatus.READY).count() == 200 == await Post.all().count()
    assert await MediaVariant.all().count() == 400
    assert await Upload.filter(post_id__isnull=False).count() == 200
    follows = await Follow.all().values_list("follower_id", "followee_id", "state")
    accepted = [(a, b) for a, b, state in follows if state == FollowState.ACCEPTED]
    assert (len(accepted), len(follows) - len(accepted)) == (report.follows, report.requests)

    # The denormalised counts match the rows exactly.
    followers = Counter(b for _, b in accepted)
    following = Counter(a for a, _ in accepted)
    authored = Counter(await Post.all().values_list("author_id", flat=True))
    for user in await User.all():
        assert user.follower_count == followers[user.id], user.username
        assert user.following_count == following[user.id], user.username
        assert user.post_count == authored[user.id], user.username

    stars = await User.filter(username__in=report.celebrities)
    assert len(stars) == 2 and all(s.follower_count >= THRESHOLD for s in stars)
    assert not report.warnings

    # Post ids are time-sortable and spread over the last 30 days.
    now_ms = time.time() * 1000
    moments = [id_time_ms(i) for i in await Post.all().values_list("id", flat=True)]
    assert all(now_ms - 30 * 86_400_000 - 5000 <= m <= now_ms for m in moments)
    assert max(moments) - min(moments) > 7 * 86_400_000
    # Minted on the node this process holds, as every id of this process is.
    seeded = [*await Post.all().values_list("id", flat=True),
              *await User.all().values_list("id", flat=True)]
    assert {id_node(i) for i in seeded} == {resources.id_lease.node}

    # A person can log in as demo0 and see a feed of real photos.
    logged_in = await gql(client, LOG_IN, {"u": "demo0", "p": DEMO_PASSWORD})
    assert not logged_in.get("errors"), logged_in
    token = logged_in["data"]["logIn"]["token"]
    feed = await gql(client, FEED, {"first": 20}, token=token)
    assert not feed.get("errors"), feed
    edges = feed["data"]["feed"]["edges"]
    assert len(edges) == 20
    assert {e["node"]["author"]["username"] for e in edges} & set(report.celebrities)
    assert all(e["node"]["media"]["url"] for e in edges)
    photo = await fetch(client, edges[0]["node"]["media"]["url"])
    assert photo.status_code == 200 and photo.content.startswith(b"\xff\xd8\xff")
    wrong = await gql(client, LOG_IN, {"u": "demo1", "p": "not the password"})
    assert wrong.get("errors")
    nobody = await gql(client, LOG_IN, {"u": report.celebrities[0], "p": DEMO_PASSWORD})
    assert nobody.get("errors")

    # Seeding again needs --force, and then adds people beside the ones there.
    with pytest.raises(SeedRefused):
        await seed(resources, users=20, posts=10, celebrities=1, progress=False, photos=2)
    again = await seed(resources, users=20, posts=10, celebrities=1, seed=7, force=True,
                       progress=False, photos=2)
    assert again.demo_accounts[0] == "demo0.2"
    assert await User.all().count() == 80
    assert await Post.all().count() == 210

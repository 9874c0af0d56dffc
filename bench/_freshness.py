"""Whether a read that could be answered from a cache is fresh, over HTTP against the
running server (issue 15's freshness target): right after a new post lands in a viewer's
feed, the very next feed read shows it; right after unfollow, removeFollower, block or
going private returns, the very next read shows nothing of that author.

Every check uses new accounts, so none disturbs another or the seeded network, and reads
each document twice before the change, so that a server that caches answers has one.
A mutation's answer is awaited before the next read: that is what "right after" means.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench._graphql import (
    BLOCK,
    FOLLOW,
    MAKE_PRIVATE,
    REMOVE_FOLLOWER,
    SIGN_UP,
    UNFOLLOW,
    Document,
    gql,
    in_home_feed,
    jpeg,
    post_photo,
)
from bench._harness import verdict
from pictograph.cache import keys
from pictograph.schema.node import decode_global_id

FIRST_PAGE = {"first": 20}


@dataclass
class Account:
    username: str
    token: str
    id: str  # global id

    @property
    def database_id(self) -> int:
        decoded = decode_global_id(self.id)
        assert decoded is not None
        return int(decoded[1])


Change = Callable[[Account, Account], Awaitable[object]]


class Freshness:
    def __init__(self, client: httpx.AsyncClient, redis: Any, feed: Document,
                 profile: Document) -> None:
        self.client = client
        self.redis = redis
        self.feed = feed
        self.profile = profile
        self.photo = jpeg()
        self.run = secrets.token_hex(3)
        self.accounts = 0
        self.new_posts: list[str] = []  # per post: "" where the next read showed it

    async def account(self, role: str) -> Account:
        self.accounts += 1
        username = f"fresh{self.run}{role}{self.accounts}"
        made = await gql(self.client, SIGN_UP, {"u": username, "p": secrets.token_urlsafe(18)},
                         None)
        payload = made["data"]["signUp"]
        return Account(username, payload["token"], payload["user"]["id"])

    async def feed_posts(self, viewer: Account) -> list[dict[str, Any]]:
        read = await self.feed.read(self.client, FIRST_PAGE, viewer.token)
        return [edge["node"] for edge in read["data"]["feed"]["edges"]]

    async def profile_posts(self, viewer: Account, owner: Account) -> list[dict[str, Any]]:
        read = await self.profile.read(self.client, {"u": owner.username}, viewer.token)
        user = read["data"]["user"]
        return [] if user is None else [edge["node"] for edge in user["posts"]["edges"]]

    def of(self, author: Account, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [node for node in nodes if node["author"]["username"] == author.username]

    async def followed_author_posts(self, viewer: Account, author: Account) -> str:
        """The viewer follows the author, who posts; "" if the viewer's next feed read
        after the post lands shows it, else what went wrong."""
        await gql(self.client, FOLLOW, {"id": author.id}, viewer.token)
        for _ in range(2):
            await self.feed_posts(viewer)
        post_id = await post_photo(self.client, author.token, self.photo)
        decoded = decode_global_id(post_id)
        assert decoded is not None
        if not await in_home_feed(self.redis, keys.home_feed(viewer.database_id),
                                  str(decoded[1])):
            problem = "the post did not land in the feed within 30 s"
        elif post_id not in {node["id"] for node in await self.feed_posts(viewer)}:
            problem = "the next read did not show it"
        else:
            problem = ""
        self.new_posts.append(problem)
        return problem

    async def hides(self, change: Change, profile_too: bool) -> str:
        """A viewer sees an author's post (in the feed, and on the profile if asked),
        then `change` returns: the next reads must show none of the author's posts."""
        viewer, author = await self.account("v"), await self.account("a")
        if problem := await self.followed_author_posts(viewer, author):
            return "NOT MET: no post to hide (" + problem + ")"
        if not self.of(author, await self.feed_posts(viewer)):
            return "NOT MET: the feed stopped showing the post before the change"
        if profile_too:
            for _ in range(2):
                await self.profile_posts(viewer, author)
        await change(viewer, author)
        shown = ["feed"] if self.of(author, await self.feed_posts(viewer)) else []
        if profile_too and await self.profile_posts(viewer, author):
            shown.append("profile")
        return verdict(not shown) + (f": still shown in the {' and '.join(shown)}"
                                     if shown else "")

    async def going_private_hides(self) -> str:
        """A non-follower sees a public author's post on the profile; the author goes
        private: the non-follower's next profile read shows no posts."""
        follower, stranger, author = (await self.account("v"), await self.account("s"),
                                      await self.account("a"))
        if problem := await self.followed_author_posts(follower, author):
            return "NOT MET: no post to hide (" + problem + ")"
        for _ in range(2):
            before = await self.profile_posts(stranger, author)
        if not before:
            return "NOT MET: the profile did not show the public post before the change"
        await gql(self.client, MAKE_PRIVATE, {}, author.token)
        shown = await self.profile_posts(stranger, author)
        return verdict(not shown) + (f": {len(shown)} posts still shown" if shown else "")


async def freshness_rows(client: httpx.AsyncClient, redis: Any, feed: Document,
                         profile: Document) -> list[tuple[str, str]]:
    check = Freshness(client, redis, feed, profile)

    async def mutate(query: str, actor: Account, other: Account) -> None:
        await gql(client, query, {"id": other.id}, actor.token)

    changes: list[tuple[str, Change, bool]] = [
        ("the viewer unfollows", lambda v, a: mutate(UNFOLLOW, v, a), False),
        ("the author removes the viewer (removeFollower)",
         lambda v, a: mutate(REMOVE_FOLLOWER, a, v), False),
        ("the author blocks the viewer", lambda v, a: mutate(BLOCK, a, v), True),
        ("the viewer blocks the author", lambda v, a: mutate(BLOCK, v, a), True),
    ]
    rows = []
    for label, change, profile_too in changes:
        reads = "feed and profile reads show" if profile_too else "feed read shows"
        rows.append((f"fresh: {label} -> next {reads} none of the author's posts",
                     await check.hides(change, profile_too)))
    rows.append(("fresh: the author goes private -> a non-follower's next profile read "
                 "shows no posts", await check.going_private_hides()))
    missed = [problem for problem in check.new_posts if problem]
    rows.insert(0, ("fresh: a new post lands in the viewer's feed -> the next feed read "
                    "shows it",
                    verdict(not missed) + f" ({len(check.new_posts) - len(missed)} of "
                    f"{len(check.new_posts)} posts)" + (f": {missed[0]}" if missed else "")))
    return rows

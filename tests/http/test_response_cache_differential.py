"""The response cache against fresh execution: random sequences of what users do, and
after each step every viewer's reads, asked twice through the cache (rendered, then
served from it) and once of an app that caches nothing. Zero differences allowed.

Media URLs are compared without their query (the expiry and signature of a URL minted
at another second); everything else byte for byte, as JSON. The workers are run to
idle after each step, so the truth is settled when it is read.

Budget: PICTOGRAPH_DIFFERENTIAL_SEQUENCES x PICTOGRAPH_DIFFERENTIAL_STEPS per backend.
A failure names the seed and the steps up to it; the same seed replays them.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from pictograph.resources import Resources
from tests.conftest import Configured, empty_stores
from tests.support.feeds import FEED, fan_out
from tests.support.graphql import PASSWORD, gql, sign_up, user_id
from tests.support.photos import jpeg, post_photo, process_media

SEQUENCES = int(os.environ.get("PICTOGRAPH_DIFFERENTIAL_SEQUENCES", "4"))
STEPS = int(os.environ.get("PICTOGRAPH_DIFFERENTIAL_STEPS", "14"))
USERS = 3
RELATIONS = ("follow", "unfollow", "approveFollowRequest", "rejectFollowRequest",
             "removeFollower", "block", "unblock")
_SIGNED = re.compile(r'(/media/[^"?]+)\?[^"]*')


@dataclass
class Sequence:
    client: httpx.AsyncClient
    resources: Resources
    rng: random.Random
    tokens: list[str | None] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    revoked: str | None = None  # the last token logged out, still read with

    async def start(self) -> None:
        for index in range(USERS):
            self.tokens.append(await sign_up(self.client, f"user{index}"))
            self.ids.append(await user_id(self.client, f"user{index}"))

    async def step(self) -> None:
        actor = self.rng.randrange(USERS)
        token = self.tokens[actor]
        kind = self.rng.choice(["relation"] * 6 + ["privacy", "post", "post", "delete",
                                                   "profile", "session"])
        if token is None:
            kind = "session"
        if kind == "relation":
            other = self.rng.choice([u for u in range(USERS) if u != actor])
            mutation = self.rng.choice(RELATIONS)
            self.done.append(f"user{actor} {mutation} user{other}")
            await gql(self.client, f"mutation($id: ID!) {{ {mutation}(userId: $id) "
                      "{ status } }", {"id": self.ids[other]}, token=token)
        elif kind == "privacy":
            private = self.rng.random() < 0.5
            self.done.append(f"user{actor} private={private}")
            await gql(self.client, "mutation($p: Boolean) { updateProfile(input: "
                      "{isPrivate: $p}) { id } }", {"p": private}, token=token)
        elif kind == "post":
            self.done.append(f"user{actor} posts")
            result = await post_photo(self.client, token or "", jpeg(32, 24),
                                      caption=f"by user{actor} #{len(self.posts)}")
            self.posts.append(result["data"]["createPost"]["id"])
            if self.rng.random() < 0.8:  # now and then a post still PROCESSING is read
                await process_media(self.resources)
        elif kind == "delete" and self.posts:
            post = self.rng.choice(self.posts)
            self.done.append(f"user{actor} deletes {post}")
            await gql(self.client, "mutation($id: ID!) { deletePost(id: $id) }",
                      {"id": post}, token=token)
        elif kind == "profile":
            bio = f"bio {self.rng.randrange(1000)}"
            self.done.append(f"user{actor} bio={bio!r}")
            await gql(self.client, "mutation($b: String) { updateProfile(input: {bio: $b})"
                      " { id } }", {"b": bio}, token=token)
        elif kind == "session":
            if token is None:
                self.done.append(f"user{actor} logs in")
                result = await gql(self.client, "mutation($u: String!, $p: String!) { logIn("
                                   "input: {username: $u, password: $p}) { token } }",
                                   {"u": f"user{actor}", "p": PASSWORD})
                self.tokens[actor] = result["data"]["logIn"]["token"]
            else:
                self.done.append(f"user{actor} logs out (old token kept for reads)")
                await gql(self.client, "mutation { logOut }", token=token)
                self.tokens[actor] = None
                self.revoked = token
        await fan_out(self.resources)

    def reads(self) -> list[tuple[str, dict[str, Any]]]:
        users = "\n".join(
            f'u{i}: user(username: "user{i}") {{ username bio isPrivate followerCount '
            "followingCount postCount viewerFollowStatus followsViewer "
            "followers(first: 10) { edges { node { username } } } "
            "following(first: 10) { edges { node { username } } } "
            "posts(first: 20) { edges { node { id caption status "
            "media(size: THUMBNAIL) { url } } } } }"
            for i in range(USERS))
        posts = "\n".join(
            f'p{i}: post(id: "{post}") {{ id caption status author {{ username }} '
            f"media {{ url }} }}\n"
            f'n{i}: node(id: "{post}") {{ id ... on Post {{ caption }} }}'
            for i, post in enumerate(self.posts))
        viewer = "viewer { username } followRequests(first: 10) { edges { node { username } } }"
        return [("{\n" + users + "\n" + posts + "\n" + viewer + "\n}", {}),
                (FEED, {"first": 10})]


async def test_cached_answers_equal_fresh_execution(
    client: httpx.AsyncClient, resources: Resources, configured: Configured
) -> None:
    uncached = configured(response_cache=False)
    hits = resources.metrics.response_cache.labels("hit")
    hits_before = hits._value.get()
    for seed in range(SEQUENCES):
        await empty_stores(resources)
        run = Sequence(client, resources, random.Random(seed))  # noqa: S311 - replayable
        await run.start()
        for _ in range(STEPS):
            await run.step()
            viewers = [*run.tokens, run.revoked]
            for viewer, token in enumerate(viewers):
                for query, variables in run.reads():
                    first = await _ask(client, query, variables, token)
                    second = await _ask(client, query, variables, token)
                    truth = await _ask(uncached, query, variables, token)
                    assert first == truth == second, (
                        f"seed {seed}, viewer {viewer}, after: {run.done}",
                        first, second, truth)
    assert hits._value.get() > hits_before  # the cache answered, it was not bypassed


async def _ask(client: httpx.AsyncClient, query: str, variables: dict[str, Any],
               token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers=headers)
    assert response.status_code == 200, response.text
    return _SIGNED.sub(r"\1", response.text)

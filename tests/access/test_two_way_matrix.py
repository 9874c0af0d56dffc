"""Every relation a viewer and an owner can be in, in both directions, held against the
oracle's model (tests/oracle/model.py, which imports nothing of Pictograph's) on every
read path.

Directions: viewer->owner and owner->viewer each none, requested, following or blocking
(blocked-by is the other side's blocking; two blocks cannot meet, since whoever is
blocked cannot see the blocker to block back). A block is made over a mutual follow, so
it is also seen to end both. Owners public and private; viewers public and private (a
request to the viewer needs a private viewer); plus each owner as their own viewer, and
nobody. Every owner has a READY, a FAILED and a PROCESSING post.

Paths, per case: user { viewerFollowStatus followsViewer followers following posts },
post(id:) and node(id:) of each post with status, failureReason and media, the home
feed, and a /media URL for each post (minted for the viewer, or signed with the app's key
where none was given: a valid signature alone must not be enough). Each read is sent
twice, the second answered from the response cache.

The whole network is built once per backend, and each case is one viewer's few requests:
the number sent is counted, so a case that silently checks nothing fails too.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of
from pictograph.storage.signing import media_url
from tests.oracle.model import FAILED, PROCESSING, READY, Model
from tests.support.feeds import fan_out
from tests.support.graphql import PASSWORD, gql
from tests.support.photos import jpeg, post_photo, process_media

DIRECTIONS = ("none", "requested", "following", "blocking")
PUBLIC_OWNER, PRIVATE_OWNER, WITNESS = 0, 1, 2
READS_PER_SIGNED_IN = 2 + 1 + 3  # READ twice, FEED, /media for each post
READS_PER_ANONYMOUS = 2
UNUSABLE = b"\x00" * 2048  # accepted as an upload, refused by the media worker

READ = """query($u: String!, $ready: ID!, $failed: ID!, $processing: ID!) {
  user(username: $u) {
    viewerFollowStatus followsViewer
    followers(first: 50) { edges { node { username } } }
    following(first: 50) { edges { node { username } } }
    posts(first: 20) { edges { node { ...Shown } } }
  }
  ready: post(id: $ready) { ...Shown }
  failed: post(id: $failed) { ...Shown }
  processing: post(id: $processing) { ...Shown }
  nodeReady: node(id: $ready) { id ... on Post { media(size: THUMBNAIL) { url } } }
  nodeFailed: node(id: $failed) { id ... on Post { media(size: THUMBNAIL) { url } } }
  nodeProcessing: node(id: $processing) { id ... on Post { media(size: THUMBNAIL) { url } } }
}
fragment Shown on Post { id status failureReason media { url } }"""
FEED = "{ feed(first: 50) { edges { node { id status media(size: THUMBNAIL) { url } } } } }"
POST_FIELDS = ("ready", "failed", "processing")
SIGN_UP = ("mutation($u: String!, $p: String!) { signUp(input: {username: $u, password: $p})"
           " { token user { id } } }")
RELATE = "mutation($id: ID!) { %s(userId: $id) { status } }"
GO_PRIVATE = "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }"


@dataclass(frozen=True)
class Case:
    owner: int
    viewer: int | None  # None: no token
    viewer_private: bool = False
    to_owner: str = "none"  # what the viewer does toward the owner
    to_viewer: str = "none"  # what the owner does toward the viewer

    def name(self, network: Network) -> str:
        owner = "private" if network.model.private[self.owner] else "public"
        if self.viewer is None:
            return f"{owner} owner, nobody"
        if self.viewer == self.owner:
            return f"{owner} owner, self"
        viewer = "private" if self.viewer_private else "public"
        return (f"{owner} owner, {viewer} viewer: viewer->owner {self.to_owner}, "
                f"owner->viewer {self.to_viewer}")


def relation_pairs(owner_private: bool, viewer_private: bool) -> list[tuple[str, str]]:
    pairs = []
    for to_owner, to_viewer in itertools.product(DIRECTIONS, DIRECTIONS):
        if "blocking" in (to_owner, to_viewer) and "none" not in (to_owner, to_viewer):
            continue  # a block ends follows; who is blocked cannot block back
        if to_owner == "requested" and not owner_private:
            continue
        if to_viewer == "requested" and not viewer_private:
            continue
        pairs.append((to_owner, to_viewer))
    return pairs


class Network:
    """The users, their tokens and ids, and the model kept in step with every mutation."""

    def __init__(self, client: httpx.AsyncClient, resources: Resources) -> None:
        self.client = client
        self.resources = resources
        self.model = Model(0)
        self.names: list[str] = []
        self.tokens: list[str] = []
        self.ids: list[str] = []
        self.posts: dict[int, dict[str, str]] = {}  # owner -> status -> post id
        self.requests = 0

    async def join(self, private: bool = False) -> int:
        user = len(self.names)
        name = f"user{user}"
        result = await gql(self.client, SIGN_UP, {"u": name, "p": PASSWORD})
        assert not result.get("errors"), result
        self.names.append(name)
        self.tokens.append(result["data"]["signUp"]["token"])
        self.ids.append(result["data"]["signUp"]["user"]["id"])
        self.model.users += 1
        self.model.private[user] = False
        self.model.signed_in[user] = True
        if private:
            result = await gql(self.client, GO_PRIVATE, token=self.tokens[user])
            assert result["data"] == {"updateProfile": {"isPrivate": True}}, result
            self.model.set_private(user, True)
        return user

    async def relate(self, mutation: str, actor: int, other: int) -> None:
        """The mutation over the API, answered as the model says it must be."""
        method = {"follow": "follow", "approveFollowRequest": "approve",
                  "block": "block"}[mutation]
        want = getattr(self.model, method)(actor, other)
        result = await gql(self.client, RELATE % mutation, {"id": self.ids[other]},
                           token=self.tokens[actor])
        assert not result.get("errors"), result
        assert result["data"][mutation]["status"] == want, (mutation, actor, other, result)

    async def follow(self, follower: int, followee: int, approved: bool) -> None:
        await self.relate("follow", follower, followee)
        if approved and self.model.private[followee]:
            await self.relate("approveFollowRequest", followee, follower)

    async def arrange(self, case: Case) -> None:
        """Puts the case's viewer in its relations to the owner."""
        viewer, owner = case.viewer, case.owner
        assert viewer is not None
        if "blocking" in (case.to_owner, case.to_viewer):
            # Both following first: the block must end both follows.
            await self.follow(viewer, owner, approved=True)
            await self.follow(owner, viewer, approved=True)
            blocker, blocked = (viewer, owner) if case.to_owner == "blocking" else (owner, viewer)
            await self.relate("block", blocker, blocked)
            return
        if case.to_owner != "none":
            await self.follow(viewer, owner, approved=case.to_owner == "following")
        if case.to_viewer != "none":
            await self.follow(owner, viewer, approved=case.to_viewer == "following")

    async def publish(self, owner: int) -> None:
        """A READY and a FAILED post; the PROCESSING one comes after the media worker ran
        (see build)."""
        made = {}
        for status, data in ((READY, jpeg(32, 24)), (FAILED, UNUSABLE)):
            result = await post_photo(self.client, self.tokens[owner], data)
            assert not result.get("errors"), result
            made[status] = result["data"]["createPost"]["id"]
        self.posts[owner] = made

    async def publish_unprocessed(self, owner: int) -> None:
        result = await post_photo(self.client, self.tokens[owner], jpeg(32, 24))
        assert not result.get("errors"), result
        post_id = result["data"]["createPost"]["id"]
        self.posts[owner][PROCESSING] = post_id
        for status, post in self.posts[owner].items():
            self.model.posts[post] = owner
            self.model.post_status[post] = status

    def label(self, post_id: str) -> str:
        for owner, made in self.posts.items():
            for status, post in made.items():
                if post == post_id:
                    return f"{self.names[owner]}'s {status}"
        return post_id

    # Reading.

    async def gql(self, query: str, variables: dict[str, Any], token: str | None
                  ) -> dict[str, Any]:
        self.requests += 1
        result = await gql(self.client, query, variables, token=token)
        assert not result.get("errors"), result
        return result["data"]

    async def media_served(self, url: str) -> bool:
        self.requests += 1
        parts = urlsplit(url)
        response = await self.client.get(f"{parts.path}?{parts.query}")
        assert response.status_code in (200, 302, 403), response.status_code
        return response.status_code != 403

    def signed_url(self, viewer: int, post_id: str) -> str:
        return media_url(self.resources.settings.public_base_url, self.resources.secret_key,
                         decode_id_of(self.ids[viewer], "User") or 0,
                         decode_id_of(post_id, "Post") or 0, "FULL", int(time.time()) + 300)

    async def seen(self, case: Case) -> dict[str, Any]:
        """What the case's viewer is shown, path by path, in the model's terms."""
        token = None if case.viewer is None else self.tokens[case.viewer]
        made = self.posts[case.owner]
        variables = {"u": self.names[case.owner], "ready": made[READY],
                     "failed": made[FAILED], "processing": made[PROCESSING]}
        data = await self.gql(READ, variables, token)
        again = await self.gql(READ, variables, token)  # the response cache's answer
        assert again == _without_urls_differing(data, again), (case, data, again)
        seen = self._project(data)
        if case.viewer is None:
            return seen
        feed = await self.gql(FEED, {}, token)
        seen["feed"] = {(self.label(e["node"]["id"]), e["node"]["status"], _has_media(e["node"]))
                        for e in feed["feed"]["edges"]}
        served = set()
        for field in POST_FIELDS:
            node = data[field]
            url = node["media"]["url"] if node and node["media"] else None
            if await self.media_served(url or self.signed_url(case.viewer, made[field.upper()])):
                served.add(self.label(made[field.upper()]))
        seen["/media"] = served
        return seen

    def _project(self, data: dict[str, Any]) -> dict[str, Any]:
        user = data["user"]
        seen: dict[str, Any] = {"profile": user is not None}
        if user is not None:
            seen["viewerFollowStatus"] = user["viewerFollowStatus"]
            seen["followsViewer"] = user["followsViewer"]
            for part in ("followers", "following"):
                seen[part] = {e["node"]["username"] for e in user[part]["edges"]}
            seen["user.posts"] = {self._post(e["node"]) for e in user["posts"]["edges"]}
        seen["post"] = {self._post(data[f]) for f in POST_FIELDS if data[f]}
        seen["node"] = {(self.label(data[f]["id"]), _has_media(data[f]))
                        for f in ("nodeReady", "nodeFailed", "nodeProcessing") if data[f]}
        return seen

    def _post(self, node: dict[str, Any]) -> tuple[str, str, bool, bool]:
        return (self.label(node["id"]), node["status"], _has_media(node),
                node["failureReason"] is not None)

    def expected(self, case: Case) -> dict[str, Any]:
        """The same, as the model says."""
        model, viewer, owner = self.model, case.viewer, case.owner
        made = self.posts[owner].values()
        want: dict[str, Any] = {"profile": model.profile_visible(viewer, owner)}
        if want["profile"]:
            want["viewerFollowStatus"] = "NONE" if viewer is None else model.status(viewer,
                                                                                    owner)
            want["followsViewer"] = model.follows_viewer(viewer, owner)
            for part in ("followers", "following"):
                want[part] = {self.names[u] for u in model.list_shown(viewer, owner, part)}
            want["user.posts"] = {self._modelled(viewer, p)
                                  for p in model.posts_shown(viewer, owner)}
        want["post"] = {self._modelled(viewer, p) for p in made if model.post_visible(viewer, p)}
        want["node"] = {(self.label(p), model.media_visible(viewer, p))
                        for p in made if model.post_visible(viewer, p)}
        if viewer is not None:
            want["feed"] = {(self.label(p), model.post_status[p],
                             model.media_visible(viewer, p)) for p in model.feed(viewer)}
            want["/media"] = {self.label(p) for p in made if model.media_visible(viewer, p)}
        return want

    def _modelled(self, viewer: int | None, post: str) -> tuple[str, str, bool, bool]:
        model = self.model
        return (self.label(post), model.post_status[post], model.media_visible(viewer, post),
                model.failure_reason_visible(viewer, post))


async def build(client: httpx.AsyncClient, resources: Resources) -> tuple[Network, list[Case]]:
    """Both owners, a witness both follow and are followed by (so every list has someone
    in it to hide), and one viewer per case."""
    network = Network(client, resources)
    await network.join()
    await network.join(private=True)
    witness = await network.join()
    for owner in (PUBLIC_OWNER, PRIVATE_OWNER):
        await network.follow(witness, owner, approved=True)
        await network.follow(owner, witness, approved=True)
    cases = []
    for owner in (PUBLIC_OWNER, PRIVATE_OWNER):
        cases += [Case(owner, owner), Case(owner, None)]
        for viewer_private in (False, True):
            for to_owner, to_viewer in relation_pairs(network.model.private[owner],
                                                      viewer_private):
                viewer = await network.join(private=viewer_private)
                case = Case(owner, viewer, viewer_private, to_owner, to_viewer)
                await network.arrange(case)
                cases.append(case)
    for owner in (PUBLIC_OWNER, PRIVATE_OWNER):
        await network.publish(owner)
    await process_media(resources)  # READY and FAILED
    for owner in (PUBLIC_OWNER, PRIVATE_OWNER):
        await network.publish_unprocessed(owner)  # PROCESSING: no worker runs again
    await fan_out(resources)
    return network, cases


async def test_every_relation_both_ways_on_every_path(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    network, cases = await build(client, resources)
    assert len(cases) == 2 * 2 + (6 + 8) + (8 + 11)  # self and nobody, then the pairs
    hits = resources.metrics.response_cache.labels("hit")
    hits_before = hits._value.get()
    network.requests = 0

    wrong = []
    for case in cases:
        seen, want = await network.seen(case), network.expected(case)
        for path in sorted(set(seen) | set(want)):
            if seen.get(path) != want.get(path):
                wrong.append(f"{case.name(network)}: {path} shown {seen.get(path)!r}, "
                             f"model {want.get(path)!r}")
    assert not wrong, "\n".join([f"{len(wrong)} differences from the model:", *wrong])

    signed_in = sum(case.viewer is not None for case in cases)
    assert network.requests == (READS_PER_SIGNED_IN * signed_in
                                + READS_PER_ANONYMOUS * (len(cases) - signed_in))
    # Every signed-in repeat of READ was answered from the response cache.
    assert hits._value.get() - hits_before == signed_in


def _has_media(node: dict[str, Any] | None) -> bool:
    return bool(node and node.get("media") and node["media"].get("url"))


def _without_urls_differing(first: Any, again: Any) -> Any:
    """`first` with each media URL taken from `again`: a URL minted on another request
    differs in its expiry, not in whether it exists."""
    if isinstance(first, dict) and isinstance(again, dict):
        if set(first) == {"url"} and set(again) == {"url"}:
            return again
        return {k: _without_urls_differing(v, again.get(k)) for k, v in first.items()}
    if isinstance(first, list) and isinstance(again, list) and len(first) == len(again):
        return [_without_urls_differing(a, b) for a, b in zip(first, again, strict=True)]
    return first

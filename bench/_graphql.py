"""The frontend's GraphQL documents, and sending them to a running server as a frontend
would: a query by its hash once the server has it (Apollo's automatic persisted queries),
or in full where the server does not speak that protocol."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from pictograph.cache.feeds import FeedCache

FEED = ("query($first: Int) { feed(first: $first) { edges { node { id caption "
        "author { username displayName } media(size: THUMBNAIL) { url width height } } } "
        "pageInfo { hasNextPage endCursor } } }")
PROFILE = ("query($u: String!) { user(username: $u) { username displayName bio followerCount "
           "followingCount posts(first: 12) { edges { node { id "
           "media(size: THUMBNAIL) { url width height } } } } } }")
SIGN_UP = ("mutation($u: String!, $p: String!) { signUp(input: {username: $u, password: $p}) "
           "{ token user { id } } }")
MAKE_PRIVATE = "mutation { updateProfile(input: {isPrivate: true}) { isPrivate } }"
FOLLOW = "mutation($id: ID!) { follow(userId: $id) { status } }"
UNFOLLOW = "mutation($id: ID!) { unfollow(userId: $id) { status } }"
REMOVE_FOLLOWER = "mutation($id: ID!) { removeFollower(userId: $id) { status } }"
BLOCK = "mutation($id: ID!) { block(userId: $id) { status } }"
CREATE_UPLOAD = ("mutation($t: String!, $s: Int!) { createUpload(input: {contentType: $t, "
                 "byteSize: $s}) { uploadId url method headers { name value } } }")
CREATE_POST = "mutation($u: ID!) { createPost(input: {uploadId: $u, caption: \"bench\"}) { id } }"

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"


def encoded(body: dict[str, Any]) -> bytes:
    """A request body exactly as wrk sends it (bench/load.lua takes this text as is)."""
    return json.dumps(body).encode()


async def post(client: httpx.AsyncClient, body: dict[str, Any],
               token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await client.post("/graphql", content=encoded(body), headers=headers)


def answer(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's JSON; anything but a 200 without errors ends the run."""
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"{what[:40]}... answered {response.status_code}: {body}")
    return body


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any],
              token: str | None) -> dict[str, Any]:
    """The document in full (mutations, and everything that is not read under load)."""
    return answer(await post(client, {"query": query, "variables": variables}, token), query)


def _codes(response: httpx.Response) -> set[str]:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return set()
    return {(error.get("extensions") or {}).get("code") for error in errors}


@dataclass
class Document:
    """A query as a frontend sends it: by hash, once `register` found the server knows it."""

    query: str
    persisted: bool = False
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.query.encode()).hexdigest()

    def body(self, variables: dict[str, Any]) -> dict[str, Any]:
        if not self.persisted:
            return {"query": self.query, "variables": variables}
        return self._hashed(variables)

    def _hashed(self, variables: dict[str, Any]) -> dict[str, Any]:
        return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": self.sha256}},
                "variables": variables}

    async def register(self, client: httpx.AsyncClient, variables: dict[str, Any],
                       token: str) -> None:
        """As Apollo's client does: the hash alone; on PERSISTED_QUERY_NOT_FOUND the hash
        with the document, after which the hash alone must do. A server that answers the
        hash alone any other way does not speak the protocol: the document goes in full."""
        hashed = self._hashed(variables)
        response = await post(client, hashed, token)
        if NOT_FOUND in _codes(response):
            answer(await post(client, {**hashed, "query": self.query}, token), self.query)
            response = await post(client, hashed, token)
            if response.status_code != 200 or _codes(response):
                raise SystemExit(f"the server registered the document but then answered "
                                 f"its hash {response.status_code}: {response.text[:300]}")
        self.persisted = response.status_code == 200 and not _codes(response)

    @property
    def sent_as(self) -> str:
        return "APQ hash only" if self.persisted else "full query: no persisted queries here"

    async def read(self, client: httpx.AsyncClient, variables: dict[str, Any],
                   token: str) -> dict[str, Any]:
        return answer(await post(client, self.body(variables), token), self.query)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((640, 480)).save(out, "JPEG", quality=80)
    return out.getvalue()


async def post_photo(client: httpx.AsyncClient, token: str, photo: bytes) -> str:
    """Uploads a photo and posts it; the post's global id."""
    ticket = (await gql(client, CREATE_UPLOAD, {"t": "image/jpeg", "s": len(photo)},
                        token))["data"]["createUpload"]
    await client.request(ticket["method"], ticket["url"], content=photo,
                         headers={h["name"]: h["value"] for h in ticket["headers"]})
    created = await gql(client, CREATE_POST, {"u": ticket["uploadId"]}, token)
    return created["data"]["createPost"]["id"]


async def in_home_feed(redis: Any, feed_key: str, post_id: str, within: float = 30) -> bool:
    """Waits until the fan-out has written the post (its database id) into the feed."""
    deadline = time.perf_counter() + within
    feeds = FeedCache(redis)
    while int(post_id) not in (await feeds.stored_ids(feed_key)).ids:
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True

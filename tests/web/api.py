"""What a browser test does behind the page's back, over HTTP as any client would."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.graphql import PASSWORD
from tests.support.photos import CREATE_POST, CREATE_UPLOAD, jpeg


async def gql(base: str, query: str, variables: dict[str, Any] | None = None,
              token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        body = (await client.post("/graphql", json={"query": query,
                                                    "variables": variables or {}},
                                  headers=headers)).json()
    assert not body.get("errors"), body
    return body["data"]


async def sign_up(base: str, username: str) -> str:
    data = await gql(base, "mutation($u: String!, $p: String!) { signUp(input: "
                           "{username: $u, password: $p}) { token } }",
                     {"u": username, "p": PASSWORD})
    return data["signUp"]["token"]


async def post_photo(base: str, token: str, caption: str) -> str:
    photo = jpeg(64, 48)
    ticket = (await gql(base, CREATE_UPLOAD, {"type": "image/jpeg", "size": len(photo)},
                        token))["createUpload"]
    async with httpx.AsyncClient(timeout=10) as client:
        (await client.put(ticket["url"], content=photo, headers={
            header["name"]: header["value"] for header in ticket["headers"]})
         ).raise_for_status()
    created = await gql(base, CREATE_POST, {"upload": ticket["uploadId"],
                                            "caption": caption}, token)
    return created["createPost"]["id"]


async def until_ready(base: str, token: str, post_id: str) -> None:
    """Waits for the media worker to finish the post (READY), checking every 0.1 s; the
    deadline only turns a post that never gets there into a failure."""
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        post = (await gql(base, "query($id: ID!) { post(id: $id) { status } }",
                          {"id": post_id}, token))["post"]
        assert post["status"] != "FAILED"
        if post["status"] == "READY":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"post {post_id} is still processing")

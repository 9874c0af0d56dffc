"""The oracle's hands and eyes: a few users talking to a served app the way frontends do
(HTTP for most things, a WebSocket each that stays open, a feedUpdates subscription on
it), and every read path gathered into one view per viewer to hold against the model."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from redis.exceptions import RedisError, ResponseError
from starlette.applications import Starlette

from pictograph import events
from pictograph.cache import keys
from pictograph.cache.pubsub import listened
from pictograph.db import using_database
from pictograph.live import publish as live
from pictograph.resources import Resources
from pictograph.schema.node import decode_id_of, encode_global_id
from pictograph.storage.signing import media_url
from pictograph.workers.streams import StreamConsumer
from tests.conftest import empty_stores
from tests.support.feeds import consumers
from tests.support.graphql import PASSWORD, gql
from tests.support.photos import jpeg, post_photo
from tests.support.redis_server import RedisServer
from tests.support.sockets import Socket, SocketClosed, open_socket

FEED_UPDATES = "subscription { feedUpdates { kind postId post { id media { url } } } }"
FEED = "{ feed(first: 100) { edges { node { id media(size: THUMBNAIL) { url } } } } }"
PHOTO = jpeg(16, 12)
UNUSABLE = b"\x00" * 2048  # accepted as an upload; the media worker fails the post
# Only turns a socket that never answers into a failure that names it.
WAIT = 10.0
# Sentinel "posts" have tiny ids; real ones are snowflakes far above.
SENTINELS_BELOW = 1 << 30


@dataclass(frozen=True)
class View:
    """What one viewer can see, projected from GraphQL answers: comparable across paths
    (media URLs differ in their signature and expiry, not in whether they exist)."""

    feed: frozenset[tuple[str, bool]] | None  # (post, media shown); None: refused
    profiles: frozenset[str]  # usernames whose `user` answered
    posts: frozenset[tuple[str, str, bool]]  # (username, post, media) from user.posts
    post: frozenset[tuple[str, bool, str, bool]]  # (post, media, status, failureReason)
    node: frozenset[tuple[str, bool]]  # (post, media) from Query.node


@dataclass
class Member:
    """One user of the example: their current token and their two open sockets: one for
    queries and mutations, one carrying their feedUpdates subscription. (Apart, because a
    subscription that handles a message refreshes what its socket has read, and would
    hide a socket that lets one operation's reads answer the next.)"""

    index: int
    name: str
    id: str  # global id
    pk: int
    token: str
    signed_in: bool = True
    socket: Socket | None = None
    listening: Socket | None = None
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _stack: contextlib.AsyncExitStack | None = None
    _collector: asyncio.Task[None] | None = None


class World:
    def __init__(self, app: Starlette, client: httpx.AsyncClient, base_url: str) -> None:
        self.app = app
        self.client = client
        self.base_url = base_url
        self.members: list[Member] = []
        self.urls: dict[tuple[int, str], str] = {}  # (viewer, post) -> a /media URL
        self._sentinels = itertools.count(1)
        self._stop_fan_out = asyncio.Event()
        self._fan_out: list[asyncio.Task[None]] = []
        self.redis_server: RedisServer | None = getattr(app.state, "oracle_redis", None)

    async def restart_redis(self) -> None:
        """SIGKILL and a start from the last snapshot; returns once the app uses Redis
        again (it vouches for the instance first: cache/trust.py)."""
        assert self.redis_server is not None
        await asyncio.to_thread(self.redis_server.kill)
        await asyncio.to_thread(self.redis_server.start)
        redis = self.resources.redis
        for _ in range(400):
            try:
                await redis.ping()
                # And the live hub listens again for every open subscription: a sentinel
                # published before it does would be lost (as anything is, and RESYNC
                # says so), and the step's live check would wait for it in vain.
                listening = [keys.live_viewer(m.pk) for m in self.members if m.listening]
                if all(await listened(redis, *listening)):
                    return
            except RedisError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the app never used the restarted Redis again")

    @contextlib.asynccontextmanager
    async def fanning_out(self, consumers_per_stream: int) -> AsyncIterator[None]:
        """Fan-out consumers running beside the users, as `pictograph worker` processes
        do: `consumers_per_stream` of them on each stream, racing each other."""
        resources = self.resources

        async def run(consumer: StreamConsumer) -> None:
            with using_database(resources.database):
                await consumer.run(self._stop_fan_out)

        self._stop_fan_out.clear()
        self._fan_out = [asyncio.create_task(run(consumer))
                         for _ in range(consumers_per_stream)
                         for consumer in consumers(resources, claim_idle_ms=1000)]
        try:
            yield
        finally:
            self._stop_fan_out.set()
            await asyncio.gather(*self._fan_out, return_exceptions=True)

    async def fan_out_idle(self) -> None:
        """Returns once the fan-out consumers have nothing left to do (or raises if one
        of them died)."""
        redis = self.resources.redis
        for _ in range(2000):
            for task in self._fan_out:
                if task.done():
                    task.result()  # a consumer that died is the failure to report
            busy = False
            for stream in (events.POSTS, events.FOLLOWS):
                try:
                    groups = await redis.xinfo_groups(keys.event_stream(stream))
                except ResponseError:  # no stream yet
                    continue
                busy |= any(g["pending"] or g["lag"] for g in groups)
            if not busy:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the fan-out consumers never caught up")

    @property
    def resources(self) -> Resources:
        return self.app.state.resources

    # Setting up and tearing down an example.

    async def reset(self, users: int) -> None:
        await self.close()
        await empty_stores(self.resources)
        self.members = []
        self.urls = {}
        for index in range(users):
            name = f"user{index}"
            result = await gql(self.client, "mutation($u: String!, $p: String!) { signUp("
                               "input: {username: $u, password: $p}) { token user { id } } }",
                               {"u": name, "p": PASSWORD})
            payload = result["data"]["signUp"]
            member = Member(index, name, payload["user"]["id"],
                            decode_id_of(payload["user"]["id"], "User") or 0, payload["token"])
            self.members.append(member)
            await self.connect(member)

    async def close(self) -> None:
        for member in self.members:
            await self.disconnect(member)

    async def connect(self, member: Member) -> None:
        """Opens the member's socket and their feedUpdates subscription on it, and waits
        until the subscription hears what is published to them."""
        stack = contextlib.AsyncExitStack()
        member.socket = await stack.enter_async_context(open_socket(self.base_url,
                                                                    member.token))
        member.listening = await stack.enter_async_context(open_socket(self.base_url,
                                                                       member.token))
        updates = await stack.enter_async_context(member.listening.subscription(FEED_UPDATES))
        member.events = asyncio.Queue()
        member._stack = stack
        member._collector = asyncio.create_task(self._collect(updates, member.events))
        for _ in range(50):
            sentinel = await self.say_sentinel(member)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._until_sentinel(member, sentinel), 0.2)
                return
        raise AssertionError(f"{member.name}'s subscription never listened")

    async def disconnect(self, member: Member) -> None:
        if member._collector is not None:
            member._collector.cancel()
            await asyncio.gather(member._collector, return_exceptions=True)
        if member._stack is not None:
            with contextlib.suppress(Exception):
                await member._stack.aclose()
        member.socket = member.listening = member._stack = member._collector = None

    @staticmethod
    async def _collect(updates: AsyncIterator[dict[str, Any]],
                       events: asyncio.Queue[dict[str, Any]]) -> None:
        try:
            async for result in updates:
                events.put_nowait(result)
        except SocketClosed as closed:
            events.put_nowait({"closed": closed.code})

    # Live updates: what a subscription said, up to a sentinel sent after the step.

    async def say_sentinel(self, member: Member) -> str:
        """Publishes a removal of a post that cannot exist, straight to the member's live
        channel: it arrives after everything published to them before it."""
        post_id = next(self._sentinels)
        await live.to_viewers(self.resources.redis, [member.pk], {
            "kind": live.POST_REMOVED, "post_id": post_id, "author_id": 0})
        return encode_global_id("Post", post_id)

    async def _until_sentinel(self, member: Member, sentinel: str,
                              said: list[dict[str, Any]] | None = None
                              ) -> list[dict[str, Any]]:
        """Events up to the sentinel, appended to `said` as they come (so a caller that
        gives up waiting keeps them)."""
        said = [] if said is None else said
        while True:
            result = await member.events.get()
            if "closed" in result:
                raise AssertionError(f"{member.name}'s socket closed ({result['closed']})")
            assert not result.get("errors"), result
            event = result["data"]["feedUpdates"]
            if event["postId"] == sentinel:
                return said
            if (decode_id_of(event["postId"], "Post") or 0) < SENTINELS_BELOW:
                continue  # an earlier attempt's sentinel
            said.append(event)

    async def feed_order(self, member: Member) -> list[str]:
        """The member's home feed as it comes, newest first, duplicates and all."""
        result = await gql(self.client, FEED, token=member.token)
        assert not result.get("errors"), result
        return [edge["node"]["id"] for edge in result["data"]["feed"]["edges"]]

    async def live_updates(self, member: Member) -> list[dict[str, Any]]:
        """What the member's subscription said since the last call, up to a sentinel
        published now. A sentinel published while the live hub reconnects is lost (as
        anything is then: RESYNC covers what matters), so another is sent every second
        until one arrives; what arrived before it is kept."""
        said: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            sentinel = await self.say_sentinel(member)
            try:
                await asyncio.wait_for(self._until_sentinel(member, sentinel, said),
                                       min(1.0, max(deadline - loop.time(), 0.01)))
                return said
            except TimeoutError:
                if loop.time() >= deadline:
                    raise AssertionError(f"{member.name}'s subscription never said a "
                                         "sentinel published after the step") from None

    # Actions.

    async def call(self, member: Member, query: str, variables: dict[str, Any],
                   on_socket: bool) -> dict[str, Any]:
        if on_socket and member.socket is not None:
            return await member.socket.execute(query, variables, WAIT)
        return await gql(self.client, query, variables, token=member.token)

    async def post(self, member: Member, data: bytes = PHOTO) -> dict[str, Any]:
        """A photo post through the upload path; the caller runs the workers."""
        return await post_photo(self.client, member.token, data)

    async def log_out(self, member: Member) -> tuple[dict[str, Any], set[int | None]]:
        """logOut over HTTP; the answer and the codes the member's sockets closed with."""
        result = await gql(self.client, "mutation { logOut }", token=member.token)
        assert member.socket is not None and member.listening is not None
        closed = [await asyncio.wait_for(socket.closed, WAIT)
                  for socket in (member.socket, member.listening)]
        await self.disconnect(member)
        return result, {close.code for close in closed}

    async def log_in(self, member: Member) -> dict[str, Any]:
        result = await gql(self.client, "mutation($u: String!, $p: String!) { logIn("
                           "input: {username: $u, password: $p}) { token } }",
                           {"u": member.name, "p": PASSWORD})
        member.token = result["data"]["logIn"]["token"]
        await self.connect(member)
        return result

    # Reading every path.

    def read_query(self, post_ids: list[str]) -> str:
        users = "\n".join(
            f'{m.name}: user(username: "{m.name}") {{ username posts(first: 100) {{'
            " edges { node { id media(size: THUMBNAIL) { url } } } } }"
            for m in self.members)
        posts = "\n".join(
            f'p{i}: post(id: "{post}") {{ id status failureReason media {{ url }} }}\n'
            f'n{i}: node(id: "{post}") {{ id ... on Post {{ media(size: THUMBNAIL) {{ url }} }} }}'
            for i, post in enumerate(post_ids))
        return "{\n" + users + "\n" + posts + "\n}"

    async def view(self, member: Member | None, post_ids: list[str],
                   on_socket: bool = False) -> View:
        """Everything one viewer sees (None: no token at all)."""
        token = member.token if member is not None else None
        query = self.read_query(post_ids)
        if on_socket:
            assert member is not None and member.socket is not None
            try:
                read = await member.socket.execute(query, {}, WAIT)
                feed = await member.socket.execute(FEED, {}, WAIT)
            except TimeoutError:
                raise AssertionError(f"{member.name}'s socket did not answer a query"
                                     ) from None
        else:
            read = await gql(self.client, query, token=token)
            feed = await gql(self.client, FEED, token=token)
        assert not read.get("errors"), read
        data = read["data"]
        if feed.get("errors"):
            assert [e["extensions"]["code"] for e in feed["errors"]] == ["UNAUTHENTICATED"], feed
            shown_feed = None
        else:
            shown_feed = frozenset((e["node"]["id"], _has_media(e["node"]))
                                   for e in feed["data"]["feed"]["edges"])
        profiles = frozenset(data[m.name]["username"] for m in self.members if data[m.name])
        posts = frozenset((m.name, e["node"]["id"], _has_media(e["node"]))
                          for m in self.members if data[m.name]
                          for e in data[m.name]["posts"]["edges"])
        if member is not None and not on_socket:
            self._keep_urls(member, data, post_ids)
        return View(
            feed=shown_feed, profiles=profiles, posts=posts,
            post=frozenset((post, _has_media(data[f"p{i}"]), data[f"p{i}"]["status"],
                            data[f"p{i}"]["failureReason"] is not None)
                           for i, post in enumerate(post_ids) if data[f"p{i}"]),
            node=frozenset((post, _has_media(data[f"n{i}"])) for i, post in enumerate(post_ids)
                           if data[f"n{i}"]),
        )

    def _keep_urls(self, member: Member, data: dict[str, Any], post_ids: list[str]) -> None:
        for i, post in enumerate(post_ids):
            shown = data[f"p{i}"]
            if shown and shown["media"]:
                self.urls[(member.index, post)] = shown["media"]["url"]

    def url_for(self, member: Member, post: str) -> str:
        """The /media URL the member was once given for the post; for one never given, a
        URL signed with the app's own key: a valid signature alone must not be enough."""
        url = self.urls.get((member.index, post))
        if url is None:
            settings = self.resources.settings
            url = self.urls[(member.index, post)] = media_url(
                settings.public_base_url, self.resources.secret_key, member.pk,
                decode_id_of(post, "Post") or 0, "FULL", int(time.time()) + 300)
        return url

    async def media_allowed(self, url: str) -> bool:
        """Whether /media serves the photo (200, or 302 to storage) or refuses it (403)."""
        parts = urlsplit(url)
        response = await self.client.get(f"{parts.path}?{parts.query}")
        assert response.status_code in (200, 302, 403), response.status_code
        return response.status_code != 403


def _has_media(node: dict[str, Any] | None) -> bool:
    return bool(node and node.get("media") and node["media"].get("url"))

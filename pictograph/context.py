"""The typed per-request context every resolver receives."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from pictograph.accounts.sessions import Session, resolve_token, resolve_token_reading
from pictograph.cache.graph import GraphCache
from pictograph.cache.pubsub import Listener
from pictograph.cache.responses import Recording
from pictograph.errors import Unauthenticated
from pictograph.feed.policy import HomeFeed
from pictograph.graph.changes import GraphChanges
from pictograph.graph.reader import FollowGraph
from pictograph.loaders import Loaders
from pictograph.resources import Resources


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass
class SignedInSocket:
    """What a socket holds from connection_init until it closes (see http/sockets.py)."""

    token: str
    session: Session
    revocations: Listener
    connection_id: str


class Context:
    def __init__(
        self,
        resources: Resources,
        connection: HTTPConnection | None,
        token: str | None,
        request_id: str,
        recording: Recording | None = None,
    ) -> None:
        self.resources = resources
        # Set when this operation renders a response for the cache (http/response_cache.py).
        self.recording = recording
        self.connection = connection
        self.token = token
        self.request_id = request_id
        # Set by Strawberry from a WebSocket's connection_init payload.
        self.connection_params: dict[str, object] | None = None
        # A socket's sign-in (http/sockets.py), on the context the socket opened with.
        self.socket: SignedInSocket | None = None
        self._viewer_id: int | None = None
        self._viewer_resolved = False
        self._operations = 0

    def for_operation(self) -> Context:
        """A context of its own for one operation on a socket.

        graphql-transport-ws hands every operation of a socket the context made when the
        socket opened. What an operation reads (the viewer behind the token, the follow
        graph, loaded records) must not answer the next one, so each operation starts
        from this fresh copy, exactly like an HTTP request: the token is checked again
        and nothing read before is reused."""
        self._operations += 1
        operation = Context(self.resources, self.connection, self.token,
                            f"{self.request_id}.{self._operations}")
        operation.connection_params = self.connection_params
        return operation

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.resources.redis, self.recording)

    @cached_property
    def graph(self) -> FollowGraph:
        """The follow graph as this request sees it (batched, cached, cold-safe)."""
        return FollowGraph(GraphCache(self.resources.redis))

    @cached_property
    def graph_changes(self) -> GraphChanges:
        return GraphChanges(self.resources)

    @cached_property
    def feed(self) -> HomeFeed:
        return HomeFeed(self.resources)

    @property
    def redis(self) -> Redis:
        return self.resources.redis

    def forget_reads(self) -> None:
        """Drops what this request has read, after it changed the data behind it."""
        for name in ("loaders", "graph"):
            self.__dict__.pop(name, None)
        if self.recording is not None:
            self.recording.cacheable = False  # a mutation's answer is never cached

    @property
    def viewer_id_read(self) -> tuple[bool, int | None]:
        """(whether the token has been checked yet, the viewer's id or None), no I/O."""
        return self._viewer_resolved, self._viewer_id

    async def viewer_id(self) -> int | None:
        """The signed-in user's id, or None; the token is checked once per request."""
        if not self._viewer_resolved:
            self._resolved(None if self.token is None
                           else await resolve_token(self.resources.redis, self.token))
        return self._viewer_id

    def _resolved(self, viewer_id: int | None) -> None:
        self._viewer_id = viewer_id
        self._viewer_resolved = True
        if self.recording is not None and viewer_id != self.recording.viewer_id:
            self.recording.cacheable = False

    async def require_viewer_id_reading(
        self, keys_of: Callable[[int], Sequence[str]]
    ) -> tuple[int, list[str | None] | None]:
        """require_viewer_id, and the values of the viewer's keys `keys_of` names, read
        in the token check's round trip when this request has not checked the token yet
        and the token names its user (otherwise None: the caller reads them itself).
        Nothing read comes back unless the token is that user's."""
        if self._viewer_resolved or self.token is None:
            return await self.require_viewer_id(), None
        viewer_id, values = await resolve_token_reading(self.resources.redis, self.token,
                                                        keys_of)
        self._resolved(viewer_id)
        return await self.require_viewer_id(), values

    async def require_viewer_id(self) -> int:
        viewer_id = await self.viewer_id()
        if viewer_id is None:
            if self.token is None:
                raise Unauthenticated("sign in first: this needs an Authorization bearer token")
            raise Unauthenticated("the token is invalid, expired or revoked")
        return viewer_id

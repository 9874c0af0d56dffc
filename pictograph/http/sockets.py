"""WebSockets (graphql-transport-ws) that live no longer than their token.

A socket signs in once, with the token in connection_init. From then on:
- every operation on it checks the token again (Context.for_operation), so nothing runs
  as a user whose token is no longer valid;
- the socket listens for its token's revocation before it checks the token, so a logOut
  anywhere (any process) closes it, within the time a pub/sub message takes, however the
  two interleave; at the token's expiry it closes too. Either way with 4403;
- after the live hub lost Redis (messages may have been missed), and every
  RECHECK_INTERVAL besides, it asks again whether the token still holds. The process's
  one TokenWatch does that for all of its sockets (the due ones' tokens in one round
  trip), with a timer per socket for its expiry and its revocation listener diverted to
  a callback: no socket holds a task of its own for it;
- a client that stops reading cannot make the server hold its messages: each send waits
  for the socket's write buffer (uvicorn's flow control) at most SEND_STALL_SECONDS,
  then the socket closes with 1013 "client stopped reading". Meanwhile the live hub
  holds at most QUEUE_SIZE messages per subscription (cache/pubsub.py);
- it holds a place among its user's MAX_SOCKETS_PER_USER sockets as a lease in Redis,
  which lapses if the process dies, and which also marks the user present for the
  fan-out's live messages (cache/presence.py renews every open socket's place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import weakref
from typing import Any

from starlette.websockets import WebSocketDisconnected as StarletteDisconnected
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected as StrawberryDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)

from pictograph.accounts.sessions import (
    NOT_CACHED,
    cached_sessions,
    hash_token,
    resolve_session,
)
from pictograph.cache import keys
from pictograph.cache.presence import LEASE_SECONDS
from pictograph.cache.pubsub import RESYNC
from pictograph.context import Context, SignedInSocket, bearer_token
from pictograph.errors import ServiceUnavailable
from pictograph.live import publish as live
from pictograph.outages import unavailable_service

log = logging.getLogger(__name__)

MAX_SOCKETS_PER_USER = 5
# A closing socket gives its place back, waiting this long at most: with Redis away, a
# process that stops must not wait on it for each socket, and the lease lapses anyway.
LEASE_RELEASE_WAIT = 1.0
# A safety net under the revocation message: a socket asks again this often. The first
# time after a random half to whole interval: sockets opened together (a deploy, a
# bench) would otherwise all ask in the same instant, every interval, for ever.
RECHECK_INTERVAL = 60.0
# How long one message may wait for a client that does not read before its socket
# closes. A reading client on a slow link takes a live update's few hundred bytes in far
# less; the wait holds one message and the socket's bounded write buffer, nothing more.
SEND_STALL_SECONDS = 10.0
# The TokenWatch looks for sockets due a recheck this often (at once after a RESYNC).
RECHECK_SWEEP_SECONDS = 5.0
# A recheck that failed (Redis or the database away) is tried again this much later.
RECHECK_RETRY_SECONDS = 15.0
# Tokens only the database knows, asked after at once per sweep at most.
UNCACHED_AT_ONCE = 16
TOKEN_ENDED = 4403  # graphql-transport-ws's Forbidden
TRY_AGAIN_LATER = 1013  # the server could not sign in (Redis away), or the client stopped
STOPPED_READING = "client stopped reading"  # ...reading: its close reason


class StallWatch:
    """The sockets of this process that are sending, looked at every quarter of
    SEND_STALL_SECONDS by one task; a send older than that closes its socket."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[SocketHandler] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None

    def watch(self, socket: SocketHandler) -> None:
        self._sockets.add(socket)
        if self._task is None or self._task.done() or (
            self._task.get_loop() is not asyncio.get_running_loop()
        ):
            self._task = asyncio.create_task(self._sweep(), name="socket-stall-watch")

    async def _sweep(self) -> None:
        while self._sockets:
            await asyncio.sleep(SEND_STALL_SECONDS / 4)
            now = asyncio.get_running_loop().time()
            for socket in list(self._sockets):
                since = socket._sending_since
                if since is None:
                    self._sockets.discard(socket)
                elif now - since >= SEND_STALL_SECONDS:
                    self._sockets.discard(socket)
                    socket.stalled()


_stalls = StallWatch()


class TokenWatch:
    """This process's signed-in sockets, whose tokens are asked after again every
    RECHECK_INTERVAL (first after a random half to whole interval, so that sockets
    opened together are not asked after in the same instant for ever), and at once
    after the live hub got Redis back: one task for the process, each sweep's due tokens
    read in one round trip. Revocation messages and expiry are each socket's own (its
    diverted listener, its timer), taken the moment they come."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[SocketHandler] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self._due_now: asyncio.Event | None = None

    def watch(self, socket: SocketHandler) -> None:
        loop = asyncio.get_running_loop()
        socket._recheck_at = loop.time() + RECHECK_INTERVAL * (
            0.5 + secrets.randbelow(1000) / 2000)
        self._sockets.add(socket)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._due_now = asyncio.Event()
            self._task = loop.create_task(self._sweep(), name="socket-token-watch")

    def forget(self, socket: SocketHandler) -> None:
        self._sockets.discard(socket)

    def due_now(self, socket: SocketHandler) -> None:
        """The socket's token is asked after at the next sweep, which starts now."""
        socket._recheck_at = 0.0
        if self._due_now is not None:
            self._due_now.set()

    async def _sweep(self) -> None:
        assert self._due_now is not None
        due_now = self._due_now
        while self._sockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECHECK_SWEEP_SECONDS):
                    await due_now.wait()
            due_now.clear()
            now = asyncio.get_running_loop().time()
            due = [socket for socket in list(self._sockets)
                   if socket._recheck_at <= now and socket.signed_in is not None
                   and not socket._ended]
            if due:
                await self._recheck(due, now)

    @staticmethod
    async def _recheck(due: list[SocketHandler], now: float) -> None:
        """What the token cache says is judged first, for every due socket at once; the
        tokens only the database knows (after a Redis restart, say) are asked after each
        on its own, so that one slow or failing row holds up no other socket's verdict
        and puts off no other socket's next check."""
        signed_in = [(s, s.signed_in.token) for s in due if s.signed_in is not None]
        for socket, _ in signed_in:
            socket._recheck_at = now + RECHECK_INTERVAL
        if not signed_in:
            return
        redis = signed_in[0][0].context.resources.redis
        try:
            verdicts = await cached_sessions(redis, [token for _, token in signed_in])
        except Exception as error:  # Redis away: every one of them is asked again soon
            log.warning("socket token check failed for %d sockets (%s)", len(signed_in),
                        type(error).__name__)
            for socket, _ in signed_in:
                socket._recheck_at = now + RECHECK_RETRY_SECONDS
            return
        uncached = []
        for (socket, token), verdict in zip(signed_in, verdicts, strict=True):
            if verdict == NOT_CACHED:
                uncached.append((socket, token))
            elif verdict is None:
                socket.end_soon("the token is no longer valid")
        if uncached:
            gate = asyncio.Semaphore(UNCACHED_AT_ONCE)

            async def ask(socket: SocketHandler, token: str) -> None:
                async with gate:
                    try:
                        session = await resolve_session(redis, token)
                    except Exception as error:
                        log.warning("socket token check failed (%s)", type(error).__name__)
                        socket._recheck_at = now + RECHECK_RETRY_SECONDS
                        return
                if session is None:
                    socket.end_soon("the token is no longer valid")

            await asyncio.gather(*(ask(socket, token) for socket, token in uncached))


_tokens = TokenWatch()


async def sign_in(context: Context) -> SignedInSocket:
    """connection_init: listen for the token's revocation, then check the token, then take
    a lease. Raises ConnectionRejectionError (4403) for no token, a bad one, or too many
    sockets."""
    params = context.connection_params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    token = bearer_token(authorization if isinstance(authorization, str) else None)
    if token is None:
        raise ConnectionRejectionError()
    resources = context.resources
    revocations = resources.live.listener()
    try:
        # Confirmed by Redis before the token is looked at: a revocation that lands
        # after the check below is heard.
        await revocations.listen_to([keys.live_token(hash_token(token))])
        session = await resolve_session(resources.redis, token)
        if session is None:
            raise ConnectionRejectionError()
        connection_id = resources.live.socket_id()  # names this process: see pubsub.py
        if not await resources.presence.take(session.user_id, connection_id,
                                             MAX_SOCKETS_PER_USER):
            raise ConnectionRejectionError()
    except BaseException:
        await revocations.close()
        raise
    context.token = token
    return SignedInSocket(token, session, revocations, connection_id)


class SocketHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, closing the socket when its token ends."""

    signed_in: SignedInSocket | None = None
    _expiry: asyncio.TimerHandle | None = None
    _recheck_at = 0.0  # loop time: the TokenWatch asks after the token then
    _ending: asyncio.Task[None] | None = None
    _stall: asyncio.Task[None] | None = None
    _sending_since: float | None = None
    _ended = False

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)  # calls the view's on_ws_connect
        except Exception as error:
            service = ("live updates" if isinstance(error, ServiceUnavailable)
                       else unavailable_service(error))
            if service is None:
                raise
            # Not the client's fault, and not its token's: it may try again shortly.
            log.warning("socket sign-in failed: %s unavailable (%s)", service,
                        type(error).__name__)
            with contextlib.suppress(Exception):
                await self.websocket.close(code=TRY_AGAIN_LATER,
                                           reason="temporarily unavailable")
            return
        timeout = self.connection_init_timeout_task
        if self.connection_init_received and timeout is not None:
            # Strawberry cancelled its wait for connection_init but keeps the task, and
            # with it the CancelledError and its traceback, for as long as the socket is
            # open: nearly a KiB per socket. Cancelled, it needs no waiting for.
            timeout.cancel()
            self.connection_init_timeout_task = None
        signed_in = self.context.socket
        if signed_in is not None and self.signed_in is None:
            self.signed_in = signed_in
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(max(signed_in.session.expires - time.time(), 0),
                                           self.end_soon, "the token expired")
            _tokens.watch(self)
            # Last: what it heard since sign-in (a revocation, say) is taken now.
            signed_in.revocations.divert(self._heard)

    async def send_message(self, message: Any) -> None:
        if self._ended:
            raise StrawberryDisconnected  # closing: nothing more is sent
        # Watched by the process's one StallWatch rather than a timer per message: a
        # live update goes to thousands of sockets at once, and arming and cancelling a
        # timeout for each was a seventh of a delivery's CPU.
        self._sending_since = asyncio.get_running_loop().time()
        _stalls.watch(self)
        try:
            await super().send_message(message)
        finally:
            self._sending_since = None

    def stalled(self) -> None:
        """Its send waited SEND_STALL_SECONDS on a client that does not read."""
        if self._ended:
            return
        log.info("socket closed: the client took no message for %.0f s", SEND_STALL_SECONDS)
        # Nothing more is sent (not even the operations' `complete`); the operations,
        # the stuck one included, are cancelled, then the socket closes.
        self._ended = True
        self._stall = asyncio.create_task(self._close(STOPPED_READING, TRY_AGAIN_LATER))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self._ended:
            return  # the socket is closing: its token ended
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        # No close begins from here on (a revocation or a recheck landing meanwhile):
        # this is the close, and nothing is sent from now.
        self._ended = True
        _tokens.forget(self)
        if self._expiry is not None:
            self._expiry.cancel()
        for closing in (self._ending, self._stall):
            if closing is not None and closing is not asyncio.current_task():
                await asyncio.gather(closing, return_exceptions=True)
        await super().shutdown()
        # Signed in but never told so: the connection_ack could not be sent (the client
        # went at once). Its listener and lease are given back all the same.
        signed_in = self.signed_in or self.context.socket
        if signed_in is not None:
            self.signed_in = None
            presence = self.context.resources.presence
            with contextlib.suppress(Exception):
                await signed_in.revocations.close()
            try:
                async with asyncio.timeout(LEASE_RELEASE_WAIT):
                    await presence.release(signed_in.session.user_id,
                                           signed_in.connection_id)
            except Exception as error:
                log.info("socket lease not given back (%s); it lapses within %d s",
                         type(error).__name__, LEASE_SECONDS)

    def _heard(self, message: dict[str, Any]) -> None:
        """A message on the token's channel, or the hub's RESYNC, as it comes."""
        kind = message.get("kind")
        if kind == live.REVOKED:
            self.end_soon("the token was revoked")
        elif kind == RESYNC:
            _tokens.due_now(self)  # a revocation may have been missed

    def end_soon(self, reason: str) -> None:
        """The token ended: from this moment no new operation starts and nothing more is
        sent; the running operations stop (and are waited for: none may send on a closed
        socket), then the socket closes."""
        if self._ended:
            return
        log.info("socket closed: %s", reason)
        self._ended = True
        self._ending = asyncio.get_running_loop().create_task(
            self._close(reason, TOKEN_ENDED))

    async def _close(self, reason: str, code: int) -> None:
        # Cancelled in place, not through cleanup_operation: an operation that is just
        # finishing on its own (a subscription that heard the revocation too) forgets
        # its own id, and must find it there.
        running = [op.task for op in self.operations.values()
                   if op.task is not None and op.task is not asyncio.current_task()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            # Bounded: a close frame waits for the write buffer like any message.
            async with asyncio.timeout(SEND_STALL_SECONDS):
                await self.websocket.close(code=code, reason=reason)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, StarletteDisconnected | StrawberryDisconnected):
            # The client went away while an operation was answering: its loss, not ours,
            # and nothing anyone should be able to fill the error log with.
            log.debug("socket closed while an operation was sending")
            return
        await super().handle_task_exception(error)

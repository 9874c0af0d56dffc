"""The live hub: one Redis pub/sub connection per process (per node of a cluster),
shared by every open subscription and socket.

On a Redis Cluster it uses sharded pub/sub: every channel carries a hash tag (the
viewer's, the author's, the token's: keys.py), the hub subscribes it with SSUBSCRIBE on
the node that serves its slot, and publishers send SPUBLISH (publish_command), which
that node alone delivers. Classic PUBLISH on a cluster is broadcast over the cluster bus
to every node, so each message would cost every node, however many there are. The
fan-out script publishes from the follower's slot, where the channel lives too. A node
that fails (or a slot that moves: Redis then unsubscribes its channels itself) makes
the hub reconnect as a whole, on a fresh slot map, and tell every listener to resync.

Listeners register inboxes for channels; the hub subscribes a channel while anyone listens
to it. `listen_to` returns only once Redis has confirmed the subscription, so a message
published after it returns is delivered: a socket that starts listening for its token's
revocation and then checks the token cannot miss a revocation in between.

If Redis goes away the hub reconnects and subscribes everything again, so sockets stay
open through a Redis restart. Messages published meanwhile are lost, so every listener
then receives RESYNC and re-checks what it relies on (its token, its channels). So does a
listener that falls QUEUE_SIZE messages behind: its backlog is dropped for one RESYNC.

On one server a fan-out tells each process once per batch of followers, on the
process's own channel (keys.live_process: its id begins each of its sockets' leases,
see `socket_id`), naming the followers whose sockets it holds; the hub hands that one
message to each named viewer's listeners, as if it had come on the viewer's channel.
Which processes hold whom is only ever a hint: a message for a viewer nobody here
listens to is dropped, and each subscription judges what it is told for its own viewer.
What is the same for all of them (the post and its author) is built once per process
through `shared`, and what each decides for its own viewer stays its own."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from pictograph.cache import keys
from pictograph.cache.connection import node_subscriber, subscriber_client
from pictograph.checkpoints import checkpoint
from pictograph.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# Redis being away: a cluster's client raises RedisClusterException (no node answered a
# topology refresh, a slot no node serves), which is not a RedisError.
_AWAY = (RedisError, RedisClusterException)

QUEUE_SIZE = 256
# How long listen_to waits for Redis to confirm a subscription.
CONFIRM_TIMEOUT = 5.0
RESYNC = "resync"  # a message kind of the hub's own: messages may have been missed
# How long a shared build answers the listeners that ask for it: one fan-out's messages
# reach a process within this of each other, and no answer is older than a listener's
# own read would be had it waited this long behind the others.
SHARE_SECONDS = 1.0
SHARED_MAX = 1024  # builds kept at most (a burst of distinct posts), oldest dropped first

T = TypeVar("T")


class Listener:
    """One subscription's (or socket's) inbox and the channels it listens to.

    The inbox is a plain list, made when a message comes and dropped once taken, and one
    future while someone waits: an open socket holds two listeners for as long as it is
    open, and an asyncio.Queue (three deques and an Event) would cost each of them some
    3 KiB for nothing while it is empty, which it nearly always is."""

    __slots__ = ("_diverted", "_inbox", "_waiter", "channels", "hub")

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.channels: set[str] = set()
        self._inbox: list[dict[str, Any]] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._diverted: Callable[[dict[str, Any]], None] | None = None

    def divert(self, take: Callable[[dict[str, Any]], None]) -> None:
        """From now on each message is handed to `take` as it comes (in the hub's turn of
        the loop; `take` must not block), beginning with those waiting: for a listener
        nobody waits on, which would otherwise need a task of its own to take them."""
        self._diverted = take
        waiting, self._inbox = self._inbox or [], None
        for message in waiting:
            take(message)

    def pending(self) -> list[dict[str, Any]]:
        """What waits to be taken, oldest first."""
        return list(self._inbox or ())

    def put(self, message: dict[str, Any]) -> bool:
        """False if QUEUE_SIZE messages wait already."""
        if self._diverted is not None:
            try:
                self._diverted(message)
            except Exception:  # the hub's reader serves every listener: it goes on
                log.exception("live: a listener's callback failed")
            return True
        if self._inbox is None:
            self._inbox = [message]
        elif len(self._inbox) >= QUEUE_SIZE:
            return False
        else:
            self._inbox.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return True

    def drop_all(self) -> int:
        dropped = len(self._inbox or ())
        self._inbox = None
        return dropped

    async def listen_to(self, channels: Iterable[str]) -> None:
        """Returns once Redis has confirmed every channel; raises ServiceUnavailable if
        it cannot within CONFIRM_TIMEOUT."""
        new = set(channels) - self.channels
        self.channels |= new
        await self.hub._add(self, new)

    async def stop_listening_to(self, channels: Iterable[str]) -> None:
        gone = set(channels) & self.channels
        self.channels -= gone
        await self.hub._remove(self, gone)

    async def get(self) -> dict[str, Any]:
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._inbox.pop(0)
        if not self._inbox:
            self._inbox = None
        return message

    async def get_within(self, seconds: float) -> dict[str, Any] | None:
        """`get`, or None once `seconds` passed with nothing to take. A timer on the one
        waiter, where asyncio.wait_for would run the wait as a task of its own (a socket
        waits like this for as long as it is open)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(seconds, 0)
        while not self._inbox:
            if loop.time() >= deadline:
                return None
            waiter = self._waiter = loop.create_future()
            timer = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        message = self._inbox.pop(0)
        if not self._inbox:
            self._inbox = None
        return message

    async def close(self) -> None:
        await self.stop_listening_to(list(self.channels))

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _by_slot(channels: list[str]) -> list[list[str]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for channel in channels:
        grouped[key_slot(channel.encode())].append(channel)
    return list(grouped.values())


def publish_command(redis: Redis | RedisCluster) -> str:
    """PUBLISH on one server; on a cluster SPUBLISH, which goes to the node serving the
    channel's slot alone (where LiveHub subscribes it), not to every node."""
    return "SPUBLISH" if isinstance(redis, RedisCluster) else "PUBLISH"


async def publish(redis: Redis | RedisCluster, channel: str, data: bytes) -> None:
    await redis.execute_command(publish_command(redis), channel, data)


async def listened(redis: Redis | RedisCluster, *channels: str) -> list[int]:
    """How many subscriber connections hear each channel (every process's hub counts
    one): PUBSUB NUMSUB, or SHARDNUMSUB on the node serving each channel on a cluster."""
    if not isinstance(redis, RedisCluster):
        return [count for _, count in await redis.pubsub_numsub(*channels)]
    if not redis.nodes_manager.slots_cache:
        await redis.initialize()  # a fresh client knows no slots yet
    counts = []
    for channel in channels:
        [(_, count)] = await redis.pubsub_shardnumsub(
            channel, target_nodes=redis.get_node_from_key(channel))
        counts.append(int(count))
    return counts


@dataclass(slots=True, eq=False)
class _Link:
    """One subscriber connection: to the one server, or to one node of a cluster."""

    client: Redis
    pubsub: PubSub
    reader: asyncio.Task[None] | None = None


class LiveHub:
    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.source = redis
        # On a cluster, sharded pub/sub: a channel is heard on the node serving its slot
        # only (its hash tag: the viewer's, the author's, the token's), and a message is
        # sent to that node alone (SPUBLISH), not broadcast to every node (PUBLISH).
        self.sharded = isinstance(redis, RedisCluster)
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._links: dict[str, _Link] = {}  # by node name ("" on one server)
        self._routes: dict[str, str] = {}  # channel -> the link it was subscribed on
        self._lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        # Per channel on the current connections: SUBSCRIBE and UNSUBSCRIBE commands
        # sent, and their replies read. Redis answers a connection's commands in order,
        # so the n-th SUBSCRIBE is confirmed once n replies for the channel came back.
        self._sent: dict[str, int] = {}
        self._answered: dict[str, int] = {}
        self._connection = 0  # bumped on every reconnect: counts restart
        self._changed = asyncio.Condition()
        # The connections failed and are not subscribed again yet: nothing to unsubscribe.
        self._lost = False
        # A connection failed (or a channel's slot moved): the supervisor reconnects.
        self._broken = False
        self._wake = asyncio.Event()
        # Called once the hub is subscribed again after losing Redis (see presence.py).
        self._after_resync: list[Callable[[], None]] = []
        # What listeners share (see `shared`): key -> (when it was started, the build).
        self._shared: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}
        # This process's channel for a fan-out's batched messages (one server only: see
        # keys.live_process), subscribed with the first channel anyone listens to and
        # kept; its listener is the hub's own, never read (see _dispatch).
        self.process_id = secrets.token_hex(8)
        self._process_channel = None if self.sharded else keys.live_process(self.process_id)
        self._process_listener = Listener(self)

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="live-hub")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._close_links()

    async def shared(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> T:
        """What `build` makes, once for every listener of this process that asks for the
        same key within SHARE_SECONDS (or until `forget`). Only what is the same for every
        viewer may be built so; what a viewer may see is decided by each listener. A
        listener that stops waiting (its socket closed) does not cancel it for the rest."""
        now = asyncio.get_running_loop().time()
        found = self._shared.get(key)
        if found is None or now - found[0] > SHARE_SECONDS or (
            found[1].done() and (found[1].cancelled() or found[1].exception() is not None)
        ):
            built = asyncio.ensure_future(build())
            # Retrieved here, so a failure nobody waits for any more is not reported as
            # never retrieved; each waiter still gets it raised.
            built.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._shared.pop(key, None)
            self._shared[key] = found = (now, built)
            while len(self._shared) > SHARED_MAX:
                del self._shared[next(iter(self._shared))]
        return await asyncio.shield(found[1])

    def forget(self, key: Hashable) -> None:
        """The next `shared` for the key builds afresh (what it was built from changed)."""
        self._shared.pop(key, None)

    def after_resync(self, callback: Callable[[], None]) -> None:
        """`callback` runs whenever the hub got Redis back (which may have lost keys too)."""
        self._after_resync.append(callback)

    def listener(self) -> Listener:
        """A new listener, listening to nothing yet; use `async with` or close() it."""
        return Listener(self)

    def socket_id(self) -> str:
        """A new socket's id for its lease (cache/presence.py), which names this process:
        the fan-out tells the process's channel of the followers whose sockets it holds."""
        return f"{self.process_id}:{secrets.token_hex(8)}"

    async def _add(self, listener: Listener, channels: set[str]) -> None:
        async with self._lock:
            process = self._process_channel
            if process is not None and process not in self._listeners:
                # Confirmed with the first channel of all: a socket's lease (taken after
                # its first channel is confirmed) names this process only once it hears.
                self._listeners[process].add(self._process_listener)
                channels = channels | {process}
            else:
                process = None
            fresh = [c for c in channels if not self._listeners[c] or c == process]
            for channel in channels:
                if channel != process:
                    self._listeners[channel].add(listener)
            if fresh:
                self._count_sent(fresh)
                try:
                    await self._subscribe(fresh)
                except _AWAY:
                    log.warning("live hub: subscribe failed; the hub re-subscribes")
                    self._break()
            targets = {c: (self._connection, self._sent.get(c, 0)) for c in channels}
        await self._confirmed(targets)

    async def _confirmed(self, targets: dict[str, tuple[int, int]]) -> None:
        def done() -> bool:
            for channel, (connection, sent) in list(targets.items()):
                if connection != self._connection:  # reconnected: wait for the resend
                    targets[channel] = (self._connection, self._sent.get(channel, 0))
                    return False
                if self._answered.get(channel, 0) < sent:
                    return False
            return True

        try:
            # The timeout cancels this task itself: Condition.wait then takes the lock back
            # before it lets go (a wait_for around it would cancel an inner task, which may
            # leave the lock released twice: "Lock is not acquired").
            async with asyncio.timeout(CONFIRM_TIMEOUT), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            raise ServiceUnavailable(
                "live updates are temporarily unavailable; try again in a moment") from None

    async def _remove(self, listener: Listener, channels: set[str]) -> None:
        # Forgotten at once, outside the lock: a closing listener (a socket closing as
        # the process stops) must not wait for a reconnect that holds it, to a Redis
        # that may not answer. Nothing is delivered to it from now on either way.
        empty = []
        for channel in channels:
            listeners = self._listeners.get(channel)
            if listeners is None:
                continue
            listeners.discard(listener)
            if not listeners:
                del self._listeners[channel]
                empty.append(channel)
        if not empty or self._lost:
            return  # the reconnect subscribes only what is listened to then
        async with self._lock:
            # Someone may have started listening again meanwhile.
            empty = [c for c in empty if c not in self._listeners]
            if empty and not self._lost:
                await self._unsubscribe(empty)

    async def _subscribe(self, channels: list[str]) -> None:
        """Subscribes each channel on its link (under the lock): SUBSCRIBE on one server,
        SSUBSCRIBE on the node serving the channel's slot of a cluster."""
        for name, grouped in (await self._by_node(channels)).items():
            link = self._link(name)
            for channel in grouped:
                self._routes[channel] = name
            if self.sharded:
                # One SSUBSCRIBE per slot: Redis refuses one across slots (CROSSSLOT).
                for same_slot in _by_slot(grouped):
                    await link.pubsub.ssubscribe(*same_slot)
            else:
                await link.pubsub.subscribe(*grouped)

    async def _unsubscribe(self, channels: list[str]) -> None:
        self._count_sent(channels)
        grouped: dict[str, list[str]] = defaultdict(list)
        for channel in channels:
            name = self._routes.pop(channel, None)
            if name is not None:
                grouped[name].append(channel)
        for name, names in grouped.items():
            link = self._links.get(name)
            if link is None:
                continue
            try:
                if self.sharded:
                    for same_slot in _by_slot(names):
                        await link.pubsub.sunsubscribe(*same_slot)
                else:
                    await link.pubsub.unsubscribe(*names)
            except RedisError:
                pass

    async def _by_node(self, channels: list[str]) -> dict[str, list[str]]:
        if not self.sharded:
            return {"": channels}
        cluster = self.source
        assert isinstance(cluster, RedisCluster)
        if not cluster.nodes_manager.slots_cache:
            await cluster.initialize()  # no command has learned the slot map yet
        grouped: dict[str, list[str]] = defaultdict(list)
        for channel in channels:
            node = cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
            grouped[node.name].append(channel)
        return grouped

    def _link(self, name: str) -> _Link:
        link = self._links.get(name)
        if link is None:
            if self.sharded:
                assert isinstance(self.source, RedisCluster)
                node = self.source.get_node(node_name=name)
                assert node is not None
                client = node_subscriber(node)
            else:
                client = subscriber_client(self.source)  # type: ignore[arg-type]
            link = self._links[name] = _Link(client, client.pubsub())
            link.reader = asyncio.create_task(self._read(link), name=f"live-hub {name}")
        return link

    def _count_sent(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self._sent[channel] = self._sent.get(channel, 0) + 1

    def _break(self) -> None:
        """A connection failed, or a channel's slot moved: the supervisor reconnects."""
        self._lost = self._broken = True
        self._wake.set()

    async def _read(self, link: _Link) -> None:
        """One link's messages, until it fails."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not link.pubsub.subscribed:
                    await asyncio.sleep(0.05)  # nothing subscribed on it (yet)
                    continue
                started = loop.time()
                message = await link.pubsub.get_message(timeout=1.0)
                if message is not None:
                    await self._handle(message)
                elif loop.time() - started < 0.01:
                    # An empty answer at once (fakeredis does not wait): do not spin.
                    await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as error:
            log.warning("live hub lost redis (%s); reconnecting", type(error).__name__)
            self._break()

    async def _supervise(self) -> None:
        """Reconnects (every link, as one) whenever one failed, with a growing pause."""
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._broken:
                await asyncio.sleep(backoff)
                # Where a test acts while the hub is away: what it publishes is missed.
                await checkpoint("live_hub.reconnecting")
                self._broken = False
                await self._resubscribe()
                backoff = min(backoff * 2, 5.0) if self._broken else 0.1

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if isinstance(channel, bytes):  # a cluster node's client does not decode
            channel = channel.decode()
        if kind in ("message", "smessage"):
            self._dispatch(channel, message["data"])
        elif kind in ("subscribe", "unsubscribe", "ssubscribe", "sunsubscribe"):
            async with self._changed:
                self._answered[channel] = self._answered.get(channel, 0) + 1
                if self._answered[channel] > self._sent.get(channel, 0) and (
                        channel in self._listeners):
                    # Said by the server, not asked for: the channel's slot moved to
                    # another node (a resharding). What was published meanwhile may be
                    # lost: subscribe again where the slot map says, and resync.
                    log.warning("live hub: %s moved to another node; re-subscribing",
                                channel)
                    self._break()
                elif channel not in self._listeners and (
                    self._answered[channel] >= self._sent.get(channel, 0)
                ):
                    # Nobody listens and nothing is in flight: forget the channel.
                    self._sent.pop(channel, None)
                    self._answered.pop(channel, None)
                self._changed.notify_all()

    async def _close_links(self) -> None:
        links, self._links, self._routes = list(self._links.values()), {}, {}
        for link in links:
            if link.reader is not None:
                link.reader.cancel()
        await asyncio.gather(*(link.reader for link in links if link.reader is not None),
                             return_exceptions=True)
        for link in links:
            try:
                await link.pubsub.aclose()
            except RedisError:
                pass
            await link.client.aclose()

    async def _resubscribe(self) -> None:
        async with self._lock:
            self._lost = True
            await self._close_links()
            channels = list(self._listeners)
            async with self._changed:
                self._connection += 1
                self._sent = {channel: 1 for channel in channels}
                self._answered = {}
                self._changed.notify_all()
            if not channels:
                self._lost = False  # the next subscribe connects afresh
                return
            try:
                if self.sharded:
                    # The slot map may be stale (a failover, a resharding): a read on
                    # each node's slots, through the cluster client, has redis-py
                    # refresh it its own way if so (serialized with the client's other
                    # refreshes, and keeping the current map if no node answers).
                    for grouped in (await self._by_node(channels)).values():
                        await self.source.exists(grouped[0])
                await self._subscribe(channels)
            except _AWAY:
                self._break()  # the supervisor tries again, after a pause
                return
            self._lost = False
            # Left while this subscribed them (see _remove).
            gone = [c for c in channels if c not in self._listeners]
            if gone:
                await self._unsubscribe(gone)
            for callback in self._after_resync:
                callback()
            if self._listeners:
                # Whatever was published while the hub was away is lost.
                everyone = {listener for listeners in self._listeners.values()
                            for listener in listeners} - {self._process_listener}
                for listener in everyone:
                    self._deliver(listener, {"kind": RESYNC})

    def _dispatch(self, channel: str, data: str | bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if channel == self._process_channel:
            # A fan-out's batch: for each viewer named, what their channel would have said.
            viewers = message.pop("viewers", None)
            for viewer in viewers if isinstance(viewers, list) else ():
                for listener in list(self._listeners.get(keys.live_viewer(viewer), ())):
                    self._deliver(listener, message)
            return
        for listener in list(self._listeners.get(channel, ())):
            self._deliver(listener, message)

    @staticmethod
    def _deliver(listener: Listener, message: dict[str, Any]) -> None:
        if not listener.put(message):
            # A stalled client must neither hold the hub up nor grow without bound, and
            # must not miss anything silently: what it has not taken is dropped for one
            # RESYNC, which makes it re-check everything those messages could have said
            # (its token, what it announced, what entered the feed).
            dropped = listener.drop_all() + 1
            listener.put({"kind": RESYNC})
            log.warning("live: a subscriber fell %d messages behind; told to resync",
                        dropped)

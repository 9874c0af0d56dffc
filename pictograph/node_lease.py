"""Leases on id nodes, kept in the database the ids go to (table id_node_leases).

A process claims the lowest node no live lease holds, with one conditional write, so
two processes starting at once never get the same node: the database settles the
race. It renews the lease from a heartbeat and gives it back on the way out. Redis
plays no part, so a flushed Redis changes nothing.

Why two processes never mint the same id: the holder mints only ids whose millisecond
comes before its lease's end, as its clock read when it sent the last renewal
(LeasedIds), and another process takes an ended lease over only CLOCK_SKEW after that
end by its own clock. While the clocks of two machines differ by less than CLOCK_SKEW
(NTP keeps them within milliseconds), every id of a new holder comes after every id of
the old one, even when the old one is still running but could not renew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError

from pictograph.db import using_database
from pictograph.ids import NODES, LeasedIds, register, unregister
from pictograph.models import IdNodeLease
from pictograph.outages import unavailable_service

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a lease ends this long after its last renewal was sent
RENEW_EVERY = LEASE_SECONDS / 3  # so two renewals in a row may fail before minting stops
RETRY_EVERY = 1.0  # after a failed beat: minting resumes soon after the database is back
CLOCK_SKEW = 5.0  # how far apart two machines' clocks may be, at most
RELEASE_TIMEOUT = 5.0  # shutdown does not wait longer for a database that is away


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class NodeLease:
    """One process's lease on an id node of one database."""

    def __init__(self, database: TortoiseContext, clock: Callable[[], float] = time.time
                 ) -> None:
        self.database = database
        self.ids = LeasedIds(clock)
        self.node: int | None = None  # the node held, or last held until it was lost
        self.holder = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(6)}"
        self._renewing: asyncio.Task[None] | None = None

    @property
    def clock(self) -> Callable[[], float]:
        return self.ids.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.ids.clock = clock

    async def claim(self) -> int | None:
        """Takes the lowest node no live lease holds; None when all NODES are held."""
        with using_database(self.database):
            # Each lost race means another process won a node, so this ends.
            for _ in range(NODES):
                sent = self.clock()
                held = set(await IdNodeLease.filter(
                    expires_at__gte=_at(sent - CLOCK_SKEW)).values_list("node", flat=True))
                free = next((node for node in range(NODES) if node not in held), None)
                if free is None:
                    return None
                if await self._take(free, sent):
                    self.node = free
                    self.ids.hold(free, _end_ms(sent))
                    log.info("holding id node %d", free)
                    return free
            return None

    async def _take(self, node: int, sent: float) -> bool:
        lease = {"holder": self.holder, "claimed_at": _at(sent),
                 "expires_at": _at(sent + LEASE_SECONDS)}
        # A node used before: only if its lease still ended long enough ago when the
        # write lands. A renewal or another claim in between makes this change no row.
        if await IdNodeLease.filter(
            node=node, expires_at__lt=_at(sent - CLOCK_SKEW)
        ).update(**lease):
            return True
        try:  # a node never used
            await IdNodeLease.create(node=node, **lease)
        except IntegrityError:
            return False  # it has a row: another process took it first
        return True

    async def renew(self) -> bool:
        """Extends the lease while this process still holds it. False, and no more ids,
        once another process has taken the node over (after the lease had ended)."""
        node = self.node
        if node is None:
            return False
        sent = self.clock()
        with using_database(self.database):
            renewed = await IdNodeLease.filter(node=node, holder=self.holder).update(
                expires_at=_at(sent + LEASE_SECONDS))
        if renewed:
            self.ids.hold(node, _end_ms(sent))
            return True
        self.ids.drop()
        self.node = None
        log.warning("id node %d was taken over after our lease on it ended; claiming another",
                    node)
        return False

    async def beat(self) -> bool:
        """One heartbeat: renew, or claim when there is nothing to renew. True when this
        process may mint ids. An outage is a warning line: minting stops by itself when
        the lease ends, and the next beat tries again."""
        try:
            if await self.renew() or await self.claim() is not None:
                return True
        except Exception as error:
            service = unavailable_service(error)
            if service is None:
                raise
            log.warning("id node lease: %s unavailable (%s); ids stop when the lease ends",
                        service, type(error).__name__)
            return False
        log.warning("no free id node: all %d are leased; ids stop until one is given back",
                    NODES)
        return False

    def start_renewing(self) -> None:
        self._renewing = asyncio.create_task(self._keep_renewed(), name="id-node-lease")

    async def stop_renewing(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
            self._renewing = None

    async def _keep_renewed(self) -> None:
        healthy = True
        while True:
            await asyncio.sleep(RENEW_EVERY if healthy else RETRY_EVERY)
            try:
                healthy = await self.beat()
            except Exception:
                log.exception("id node lease: heartbeat failed; retrying")
                healthy = False

    async def release(self) -> None:
        """Gives the node back: no more ids from here, and the row says the lease ended
        now, so the node is free again CLOCK_SKEW later."""
        node, self.node = self.node, None
        self.ids.drop()
        if node is None:
            return
        now = _at(self.clock())
        try:
            with using_database(self.database):
                await asyncio.wait_for(
                    IdNodeLease.filter(node=node, holder=self.holder, expires_at__gt=now)
                    .update(expires_at=now),
                    RELEASE_TIMEOUT)
        except Exception as error:
            log.warning("could not give id node %d back (%s); it is free once its lease ends",
                        node, type(error).__name__)


def _end_ms(sent: float) -> int:
    return int((sent + LEASE_SECONDS) * 1000)


@asynccontextmanager
async def leased_id_node(database: TortoiseContext) -> AsyncIterator[NodeLease]:
    """Holds a node for `database` while the block runs: every id minted in the ORM
    context of `database` comes from it. Without the database at start-up the process
    still starts (and /readyz says 503); it mints once a later beat has claimed."""
    lease = NodeLease(database)
    register(database, lease.ids)
    try:
        await lease.beat()
        lease.start_renewing()
        yield lease
    finally:
        await lease.stop_renewing()
        await lease.release()
        unregister(database)

"""Id nodes are leased in the database the ids go to: unique under concurrent claims,
untouched by a Redis flush, taken over once a lease has ended, and a process whose
lease ended mints nothing until it renews."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from pictograph.app import create_app
from pictograph.db import open_database
from pictograph.ids import NODES, NoIdNode, id_node
from pictograph.models import AuthToken, IdNodeLease, User
from pictograph.node_lease import CLOCK_SKEW, LEASE_SECONDS, NodeLease
from pictograph.resources import Resources
from pictograph.schema.node import decode_global_id
from tests.conftest import Backend
from tests.support.graphql import PASSWORD, SIGN_UP, error_codes, gql
from tests.support.redis_state import flush_caches


async def signed_up_id(client: httpx.AsyncClient, username: str) -> int:
    result = await gql(client, SIGN_UP, {"input": {"username": username,
                                                   "password": PASSWORD}})
    assert not result.get("errors"), result
    decoded = decode_global_id(result["data"]["signUp"]["user"]["id"])
    assert decoded is not None
    return decoded[1]


@asynccontextmanager
async def another_process(backend: Backend) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A second app on the same database and Redis, as another process would be."""
    app = create_app(backend.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as client:
            yield app, client


async def test_a_flushed_redis_never_hands_a_live_node_out_again(
    client: httpx.AsyncClient, resources: Resources, backend: Backend
) -> None:
    first = await signed_up_id(client, "first")
    await flush_caches(resources.redis)  # Redis restarted empty, or flushed
    async with another_process(backend) as (_, other):
        second = await signed_up_id(other, "second")
    assert id_node(first) != id_node(second)


async def test_processes_starting_at_once_never_get_the_same_node(
    resources: Resources, backend: Backend
) -> None:
    # Each with its own connections, as separate processes have.
    databases = [await open_database(backend.settings) for _ in range(6)]
    leases = [NodeLease(database) for database in databases]
    try:
        nodes = await asyncio.gather(*(lease.claim() for lease in leases))
        assert None not in nodes and len(set(nodes)) == len(leases)
        assert resources.id_lease.node not in nodes
        holders = dict(await IdNodeLease.filter(node__in=nodes).values_list("node", "holder"))
        assert holders == {lease.node: lease.holder for lease in leases}
    finally:
        await gone_long_ago(leases)
        for database in databases:
            await database.close_connections()


async def test_an_ended_lease_is_taken_over_and_its_old_holder_stops_minting(
    resources: Resources,
) -> None:
    database = resources.database
    stalled = NodeLease(database)
    await stalled.claim()
    held = [stalled]
    # Other processes hold every other node, so the one whose lease ends is the only
    # one to take.
    now = datetime.now(UTC)
    await IdNodeLease.bulk_create([
        IdNodeLease(node=node, holder="elsewhere", claimed_at=now,
                    expires_at=now + timedelta(seconds=LEASE_SECONDS))
        for node in set(range(NODES)) - set(
            await IdNodeLease.filter(expires_at__gte=now).values_list("node", flat=True))
    ], on_conflict=["node"], update_fields=["holder", "claimed_at", "expires_at"])
    try:
        # Its last renewal went out a lease and the allowed clock skew ago.
        stalled.clock = lambda: time.time() - LEASE_SECONDS - CLOCK_SKEW - 1
        assert await stalled.renew()
        with pytest.raises(NoIdNode):
            stalled.ids.next()

        successor = NodeLease(database)
        assert await successor.claim() == stalled.node
        held.append(successor)
        assert id_node(successor.ids.next()) == stalled.node

        # Its heartbeat gets through again: the node is gone, and so is minting.
        stalled.clock = time.time
        assert not await stalled.renew() and stalled.node is None
        with pytest.raises(NoIdNode):
            stalled.ids.next()
        assert not await stalled.beat()  # and no other node is free
    finally:
        await gone_long_ago(held)
        await IdNodeLease.filter(holder="elsewhere").delete()


async def gone_long_ago(leases: list[NodeLease]) -> None:
    """Gives the nodes back as if their processes had stopped a while ago, so the tests
    after this one find them free without waiting out the clock skew."""
    for lease in leases:
        lease.clock = lambda: time.time() - CLOCK_SKEW - 1
        await lease.release()


async def test_a_process_whose_lease_was_not_renewed_in_time_mints_nothing_until_it_is(
    backend: Backend, resources: Resources
) -> None:
    async with another_process(backend) as (app, client):
        process: Resources = app.state.resources
        lease = process.id_lease
        node = lease.node
        await lease.stop_renewing()  # the heartbeat stalls...
        lease.clock = lambda: time.time() + LEASE_SECONDS  # ...for a whole lease

        refused = await gql(client, SIGN_UP, {"input": {"username": "late",
                                                        "password": PASSWORD}})
        assert error_codes(refused) == ["INTERNAL_SERVER_ERROR"]
        assert "temporarily unavailable" in refused["errors"][0]["message"]
        assert await User.filter(username="late").count() == 0
        assert await AuthToken.all().count() == 0

        assert await lease.beat()  # a renewal gets through
        assert id_node(await signed_up_id(client, "late")) == node
        lease.clock = time.time
    # Given back on the way out: the row says its lease has ended.
    row = await IdNodeLease.get(node=node)
    assert row.holder == lease.holder and row.expires_at <= datetime.now(UTC)

"""SIGTERM (a deploy, a scale-down) stops a process in order: the server stops taking
connections but finishes the requests it has, a worker finishes and acknowledges the
job it holds, and nothing else is waited for, a Redis that is away included. (Open
WebSockets close with 1012: tests/live/test_feed_updates.py.)

Each in-flight piece of work is held at a known point by a lock the test keeps in
PostgreSQL, so the signal arrives while it is certainly running."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from pictograph.cache import keys
from tests.conftest import REDIS_CLUSTER
from tests.faults.stack import MEDIA_GROUP, MEDIA_STREAM, Stack, api_for, wait_until
from tests.support.processes import output, read_until, serve, serve_process, worker
from tests.support.proxy import tcp_proxy
from tests.support.sockets import open_socket, until_listened

# Far longer than anything in these tests is given to finish: what waits for the grace
# shows as a process that does not end, never as a test that raced it.
GRACE = "60"
# With Redis away and nothing in flight the process ends in about a second. Each Redis
# command it would wait on instead costs 10 s here (a 5 s socket timeout, tried twice),
# and before the fix the workers alone took their 10 s grace: 8 s is far above the one,
# on a busy machine too, and below the other.
EXIT_WITHIN = 8.0


async def refusing(base: str) -> bool:
    """True once a new connection is refused. A connection the server accepted and then
    closed unanswered (it began shutting down between the two: the wider that window,
    the busier the machine) or answered too slowly decides nothing: ask again."""
    try:
        async with httpx.AsyncClient(timeout=2) as fresh:
            await fresh.get(f"{base}/healthz")
    except httpx.ConnectError:
        return True
    except httpx.TransportError:
        return False
    return False


async def test_sigterm_lets_a_request_in_flight_finish(stack: Stack) -> None:
    env = {**stack.env, "PICTOGRAPH_LOG_LEVEL": "INFO", "PICTOGRAPH_SHUTDOWN_GRACE": GRACE}
    with serve_process(env) as (base, process):
        async with api_for(base) as api:
            token = await api.sign_up("patient")
            # The profile update waits for the user's row, which the test holds.
            async with stack.holding(
                    "SELECT id FROM users WHERE username = 'patient' FOR UPDATE"):
                slow = asyncio.create_task(api.call(
                    'mutation { updateProfile(input: {bio: "seen through"}) { bio } }',
                    token=token))
                async def waiting() -> bool:
                    return await stack.waiting_on_locks() == 1

                await wait_until(waiting, "the request waits in the database")
                process.send_signal(signal.SIGTERM)
                await wait_until(lambda: refusing(base), "new connections are refused")
                assert not slow.done()
            body = await slow
        assert body == {"data": {"updateProfile": {"bio": "seen through"}}}
        assert await stack.db.fetchval("SELECT bio FROM users") == "seen through"
        # uvicorn re-raises the signal once it has shut down in order.
        assert await asyncio.to_thread(process.wait, 15) == -signal.SIGTERM
        said = output(process)
        assert "workers stopped" in said and "Application shutdown complete" in said


async def test_sigterm_stops_a_worker_once_its_job_is_done_and_acknowledged(
        stack: Stack) -> None:
    with serve(stack.env, workers=False) as base:
        async with api_for(base) as api:
            token = await api.sign_up("punctual")
            post_id = await api.post(token, "finished on the way out")
            async with contextlib.AsyncExitStack() as held:
                # The job waits to record its variants on the post's row, held here.
                await held.enter_async_context(stack.holding(
                    "SELECT id FROM posts WHERE id = $1 FOR UPDATE", stack.pk(post_id)))
                with worker({**stack.env, "PICTOGRAPH_LOG_LEVEL": "INFO"}) as process:
                    async def midway() -> bool:
                        return (await stack.waiting_on_locks() == 1
                                and await stack.pending(MEDIA_STREAM, MEDIA_GROUP) == 1)

                    await wait_until(midway, "the job waits with its message taken")
                    process.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(read_until, process, "workers stopping")
                    assert process.poll() is None  # it waits for the job it holds
                    await held.aclose()
                    # The lock is gone: the job ends, is acknowledged, the process exits.
                    assert await asyncio.to_thread(process.wait, 15) == 0
                    assert "workers stopped" in output(process)
            assert await stack.db.fetchval("SELECT status FROM posts") == "READY"
            assert await stack.pending(MEDIA_STREAM, MEDIA_GROUP) == 0
            assert await stack.drained(MEDIA_STREAM, MEDIA_GROUP)


@pytest.mark.parametrize("away", ["refusing", "silent"])
async def test_sigterm_with_redis_away_ends_the_process_at_once(stack: Stack, away: str) -> None:
    """Nothing in flight, a socket open (its subscription listening through the live hub),
    and Redis refusing connections or accepting them and never answering: SIGTERM ends
    the process without waiting on Redis, in workers, sockets or the live hub."""
    if REDIS_CLUSTER:
        pytest.skip("a proxy before one node cannot take a cluster away: its client "
                    "reaches the other nodes at the addresses they announce")
    redis_url = urlsplit(stack.env["PICTOGRAPH_REDIS_URL"])
    assert redis_url.hostname is not None and redis_url.port is not None
    with tcp_proxy(redis_url.hostname, redis_url.port) as proxy:
        env = {**stack.env, "PICTOGRAPH_LOG_LEVEL": "INFO", "PICTOGRAPH_SHUTDOWN_GRACE": GRACE,
               "PICTOGRAPH_REDIS_URL": urlunsplit(redis_url._replace(netloc=proxy.address))}
        with serve_process(env) as (base, process):
            async with api_for(base) as api:
                token = await api.sign_up("stranded")
                user_id = stack.pk(await api.user_id("stranded"))
            async with open_socket(base, token) as socket, \
                    socket.subscription("subscription { feedUpdates { kind } }"):
                await until_listened(stack.redis, keys.live_viewer(user_id))
                if away == "refusing":
                    proxy.refuse()
                else:
                    proxy.go_silent()
                # The workers have met the outage and wait on Redis from now on.
                await asyncio.to_thread(read_until, process, "redis unavailable")
                process.send_signal(signal.SIGTERM)
                # Raises TimeoutExpired (the process's output is printed) past the bound.
                code = await asyncio.to_thread(process.wait, EXIT_WITHIN)
            said = output(process)
    assert code == -signal.SIGTERM, said
    # Why it could end at once: no job was in flight, so no worker was waited for.
    assert "workers stopping: 0 jobs in flight" in said, said
    assert "the workers that hold none stop now" in said and "workers stopped" in said
    assert "timeout graceful shutdown exceeded" not in said
    assert "Application shutdown complete" in said

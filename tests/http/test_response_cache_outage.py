"""A request that waits for another's render of its response, when Redis goes away
meanwhile (a failover, a master killed), is answered like any request while Redis is
away: the view renders it, never an error escaping the app (found by
tests/faults/test_failover.py, where it failed one read in a few runs)."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pictograph.cache.responses import Lookup, ResponseCache
from tests.support.graphql import gql, sign_up

VIEWER = "{ viewer { username } }"


async def test_a_wait_for_anothers_fill_that_loses_redis_renders_the_response(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await sign_up(client, "alice")
    lookups: list[str] = []

    async def another_fills_then_redis_goes(self: ResponseCache, viewer_id: int,
                                            token_key: str, digest: str) -> Lookup:
        lookups.append(digest)
        if len(lookups) == 1:  # the first look: a miss another request is rendering
            return Lookup(version="v1", feed_version="f1", filling=False)
        raise RedisConnectionError("redis went away")

    monkeypatch.setattr(ResponseCache, "lookup", another_fills_then_redis_goes)
    result = await gql(client, VIEWER, token=token)
    assert len(lookups) == 2  # it waited, looked again, and Redis was gone
    assert result == {"data": {"viewer": {"username": "alice"}}}

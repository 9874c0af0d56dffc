"""/uploads and /media while PostgreSQL is away (a proxy in front of it refuses): 503
with Retry-After and one warning line, not a 500 and a traceback."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from pictograph.settings import Settings
from tests.conftest import FAST_HASHING, GENEROUS_RATE_LIMITS, PROCESS_REDIS_URL, REDIS_CLUSTER
from tests.faults.stack import Stack, through
from tests.support.graphql import gql, sign_up
from tests.support.outages import app_client, assert_unavailable
from tests.support.photos import create_upload, jpeg, put_bytes
from tests.support.proxy import tcp_proxy


async def test_uploads_are_503_with_retry_after_while_the_database_is_away(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with tcp_proxy("127.0.0.1", urlsplit(stack.database_url).port or 5432) as proxy:
        settings = Settings(data_dir=stack.data_dir, redis_url=PROCESS_REDIS_URL,
                            redis_cluster=REDIS_CLUSTER,
                            database_url=through(proxy, stack.database_url),
                            secret_key=stack.env["PICTOGRAPH_SECRET_KEY"],
                            run_workers=False, **FAST_HASHING, **GENEROUS_RATE_LIMITS)
        async with app_client(settings) as client:
            token = await sign_up(client, "shutterbug")
            photo = jpeg(80, 60)
            ticket = await create_upload(client, token, photo)

            proxy.refuse()
            caplog.set_level(logging.WARNING)
            path = urlsplit(ticket["url"])
            response = await client.put(f"{path.path}?{path.query}", content=photo,
                                        headers={"content-type": "image/jpeg"})
            assert_unavailable(response, caplog, "database")

            proxy.resume()
            assert await put_bytes(client, ticket, photo) == 200
            assert not (await gql(client, "{ viewer { username } }", token=token)).get("errors")

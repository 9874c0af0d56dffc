"""/media while a service it needs is away: 503 with Retry-After and one warning line
naming the service, not a 500 and a traceback. (/uploads: tests/faults.)"""

from __future__ import annotations

import logging

import httpx
import pytest

from pictograph.resources import Resources
from tests.conftest import Backend
from tests.support.graphql import gql, sign_up
from tests.support.outages import NOBODY, app_client, assert_unavailable
from tests.support.photos import fetch, jpeg, post_photo, process_media

PHOTO = """query($id: ID!) { post(id: $id) { media(size: THUMBNAIL) { url } } }"""


async def photo_url(client: httpx.AsyncClient, resources: Resources) -> str:
    token = await sign_up(client, "author")
    created = await post_photo(client, token, jpeg(80, 60))
    await process_media(resources)
    post_id = created["data"]["createPost"]["id"]
    return (await gql(client, PHOTO, {"id": post_id}, token=token))["data"]["post"]["media"][
        "url"]


async def test_media_is_503_with_retry_after_while_redis_is_away(
    client: httpx.AsyncClient, resources: Resources, backend: Backend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = await photo_url(client, resources)
    away = backend.settings.model_copy(update={"redis_url": f"redis://{NOBODY}/0"})
    async with app_client(away) as elsewhere:
        caplog.set_level(logging.WARNING)
        response = await fetch(elsewhere, url)
    assert_unavailable(response, caplog, "redis")


async def test_media_is_503_with_retry_after_while_storage_is_away(
    client: httpx.AsyncClient, resources: Resources, backend: Backend,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await photo_url(client, resources)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the embedded default set none
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    away = backend.settings.model_copy(update={"s3_endpoint_url": f"http://{NOBODY}",
                                               "s3_media_delivery": "stream"})
    async with app_client(away) as elsewhere:
        caplog.set_level(logging.WARNING)
        response = await fetch(elsewhere, url)
    assert_unavailable(response, caplog, "storage")

"""GET /media at the edges the photo tests leave: the second a URL expires, and URLs
missing a part. Each test kills mutants that survived mutation/run.py."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from pictograph.http import media
from pictograph.resources import Resources
from pictograph.storage.signing import media_url
from tests.conftest import Backend
from tests.support.graphql import gql, sign_up
from tests.support.outages import NOBODY, app_client
from tests.support.photos import jpeg, post_photo, process_media

FULL = "query($id: ID!) { post(id: $id) { media { url } } }"
SERVED = (200, 302)  # the bytes from disk, or a redirect to them on S3


async def own_photo(client: httpx.AsyncClient, resources: Resources) -> tuple[str, dict]:
    """The path and query of the author's own photo URL."""
    author = await sign_up(client, "author")
    created = await post_photo(client, author, jpeg(64, 48))
    await process_media(resources)
    post_id = created["data"]["createPost"]["id"]
    url = (await gql(client, FULL, {"id": post_id}, token=author))["data"]["post"]["media"]["url"]
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_a_url_is_refused_from_the_second_it_expires(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, query = await own_photo(client, resources)
    viewer, post = int(query["v"]), int(path.split("/")[2])
    now = int(time.time())
    monkeypatch.setattr(media, "time", FrozenClock(now + 0.5))

    def signed(expires: int) -> str:
        return media_url("", resources.secret_key, viewer, post, "FULL", expires)

    assert (await client.get(signed(now + 1))).status_code in SERVED  # its last second
    assert (await client.get(signed(now))).status_code == 403  # over since `now`
    assert (await client.get(signed(now - 1))).status_code == 403


async def test_a_url_missing_a_part_is_refused_like_any_other(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    path, query = await own_photo(client, resources)
    assert (await client.get(f"{path}?{urlencode(query)}")).status_code in SERVED
    broken = [f"{path}?{urlencode({k: v for k, v in query.items() if k != name})}"
              for name in ("v", "e", "s")]
    broken += [f"{path}?{urlencode(query | {'v': 'me'})}",
               f"{path}?{urlencode(query | {'e': 'soon'})}",
               f"{path.replace('/full', '/huge')}?{urlencode(query)}"]
    for url in broken:
        response = await client.get(url)
        assert (response.status_code, response.text) == (403, "forbidden"), url


async def test_an_outage_is_answered_in_plain_text_like_every_refusal(
    client: httpx.AsyncClient, resources: Resources, backend: Backend
) -> None:
    """/media answers browsers (an <img>), not GraphQL clients: no JSON, even in a 503."""
    path, query = await own_photo(client, resources)
    away = backend.settings.model_copy(update={"redis_url": f"redis://{NOBODY}/0"})
    async with app_client(away) as elsewhere:
        response = await elsewhere.get(f"{path}?{urlencode(query)}")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")

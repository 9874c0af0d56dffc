"""What the browser pages are served with: the files from the package, each page under a
Content-Security-Policy naming no host but the API's own, and CORS for the configured
origins only (the app's own pages need none)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from pictograph.http.web import WEB, app_policy
from pictograph.settings import Settings
from tests.conftest import Configured


def test_every_vendored_file_is_the_one_its_npm_package_holds() -> None:
    manifest = json.loads((WEB / "vendor.json").read_text())
    for package in manifest["packages"]:
        assert package["tarball_integrity"].startswith("sha512-")
        for file in package["files"]:
            data = (WEB / "static" / "vendor" / file["to"]).read_bytes()
            digest = base64.b64encode(hashlib.sha384(data).digest()).decode()
            assert file["integrity"] == f"sha384-{digest}", file["to"]


SVG = "http://www.w3.org/2000/svg"  # a name, not a place


def test_the_pages_name_no_other_host() -> None:
    ours = [*(WEB / "static" / "app").rglob("*"), *(WEB / "static" / "graphiql").rglob("*")]
    for page in [WEB / "index.html", WEB / "graphiql.html", *ours]:
        text = page.read_text()
        assert "https://" not in text and "http://" not in text.replace(SVG, ""), page


async def test_the_app_is_served_at_the_root_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and 'type="module"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "style-src 'self';" in policy and "'unsafe" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    script = await client.get("/static/app/main.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/../settings.py")).status_code == 404


def test_the_app_may_reach_the_bucket_it_uploads_to(tmp_path: Path) -> None:
    policy = app_policy(Settings(data_dir=tmp_path, public_base_url="https://api.example",
                                 s3_endpoint_url="https://s3.example:9000"))
    connect = next(part for part in policy.split("; ") if part.startswith("connect-src"))
    assert connect.split()[1:] == ["'self'", "https://api.example", "https://s3.example:9000",
                                   "wss://api.example", "wss://s3.example:9000"]


async def test_pages_can_be_turned_off(configured: Configured) -> None:
    client = configured(web_app=False, graphiql=False)
    assert (await client.get("/")).status_code == 404
    assert (await client.get("/static/app/main.js")).status_code == 404
    assert (await client.get("/graphql", headers={"accept": "text/html"})).status_code == 404


async def test_cors_answers_only_the_configured_origins(
    client: httpx.AsyncClient, configured: Configured
) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    # By default no origin is let in.
    refused = await client.options("/graphql", headers={"Origin": "https://app.example",
                                                        **preflight})
    assert "access-control-allow-origin" not in refused.headers

    allowing = configured(cors_origins="https://app.example")
    answer = await allowing.options("/graphql", headers={"Origin": "https://app.example",
                                                        **preflight})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()
    other = await allowing.options("/graphql", headers={"Origin": "https://evil.example",
                                                       **preflight})
    assert other.status_code == 400
    query = await allowing.post("/graphql", json={"query": "{ viewer { id } }"},
                                headers={"Origin": "https://app.example"})
    assert query.json() == {"data": {"viewer": None}}
    assert query.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize("value", ["*", "https://app.example/path", "app.example",
                                   "https://*.example"])
def test_cors_origins_must_be_origins(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be origins"):
        Settings(data_dir=tmp_path, cors_origins=value)
    assert Settings(data_dir=tmp_path, cors_origins=" https://a.example/, http://b:8080 "
                    ).cors_origin_list == ["https://a.example", "http://b:8080"]

"""`pictograph serve` as a new user runs it: a real process on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.graphql import PASSWORD
from tests.support.s3 import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("PICTOGRAPH_")
    }
    env["PICTOGRAPH_DATA_DIR"] = str(tmp_path / "data")
    process = subprocess.Popen(
        [sys.executable, "-m", "pictograph", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            process.kill()
            pytest.fail("server did not become ready:\n" + process.communicate()[0])
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def test_serve_runs_a_complete_instance_with_nothing_configured(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, process = served
    sign_up = httpx.post(
        f"{base}/graphql",
        json={
            "query": "mutation($p: String!) { signUp(input: {username: \"newbie\", password: $p})"
            " { token } }",
            "variables": {"p": PASSWORD},
        },
    ).json()
    token = sign_up["data"]["signUp"]["token"]
    viewer = httpx.post(
        f"{base}/graphql",
        json={"query": "{ viewer { username } }"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert viewer == {"data": {"viewer": {"username": "newbie"}}}
    assert (tmp_path / "data" / "pictograph.sqlite3").exists()
    assert (tmp_path / "data" / "secret_key").exists()
    process.terminate()
    output = process.communicate(timeout=15)[0]
    assert "http://127.0.0.1:" in output and "SQLite" in output and "fakeredis" in output
    assert "secret" not in output.lower().replace("secret_key", "")
    assert token not in output and PASSWORD not in output
    # INFO by default, without a line per request (PICTOGRAPH_ACCESS_LOG).
    assert "Application startup complete." in output
    assert "POST /graphql" not in output


def test_serve_hands_out_urls_on_its_own_port(served: tuple[str, subprocess.Popen[str]]) -> None:
    """With PICTOGRAPH_PUBLIC_BASE_URL unset, upload tickets (and photo URLs) point at the
    port `serve --port` listens on, not at the default 8000."""
    base, _ = served
    token = httpx.post(f"{base}/graphql", json={
        "query": "mutation($p: String!) { signUp(input: {username: \"porter\", password: $p})"
                 " { token } }", "variables": {"p": PASSWORD}}).json()["data"]["signUp"]["token"]
    ticket = httpx.post(f"{base}/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": "mutation { createUpload(input: {contentType: \"image/jpeg\", byteSize: 100})"
                 " { url } }"}).json()["data"]["createUpload"]
    assert ticket["url"].startswith(f"{base}/uploads/")

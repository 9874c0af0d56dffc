"""Real `pictograph serve` and `pictograph worker` processes for tests that cross them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pictograph.settings import Settings
from tests.support.s3 import free_port


def process_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    env.update({
        "PICTOGRAPH_DATA_DIR": str(data_dir),
        "PICTOGRAPH_ARGON2_TIME_COST": "1",
        "PICTOGRAPH_ARGON2_MEMORY_KIB": "64",
        "PICTOGRAPH_ARGON2_PARALLELISM": "1",
        "PICTOGRAPH_LOG_LEVEL": "WARNING",
        # One key for all of a test's processes: on PostgreSQL they refuse to start
        # without one, and they must agree on it to verify each other's URLs.
        "PICTOGRAPH_SECRET_KEY": secrets.token_urlsafe(48),
        # Tests sign up and log in many users from 127.0.0.1.
        **{f"PICTOGRAPH_{name.upper()}": "100000/minute"
           for name in Settings.model_fields if name.startswith("rate_limit_")},
        **settings,
    })
    return env


@contextmanager
def serve(env: dict[str, str], *, workers: bool = True) -> Iterator[str]:
    """A server process; yields its base URL once /readyz answers 200."""
    with serve_process(env, workers=workers) as (base, _):
        yield base


@contextmanager
def serve_process(env: dict[str, str], *,
                  workers: bool = True) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """As serve, with the process too, for tests that signal it."""
    port = free_port()
    env = {**env, "PICTOGRAPH_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    args = [sys.executable, "-m", "pictograph", "serve", "--port", str(port)]
    if not workers:
        args.append("--no-workers")
    with _running(args, env) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        yield base, process


@contextmanager
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with _running([sys.executable, "-m", "pictograph", "worker"], env) as process:
        time.sleep(0.5)
        assert process.poll() is None, process.communicate()[0]
        yield process


@contextmanager
def _running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    for _ in range(150):
        if process.poll() is not None:
            raise AssertionError("server exited:\n" + process.communicate()[0])
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not become ready:\n" + process.communicate()[0])

"""Real `pictograph serve` and `pictograph worker` processes for tests that cross them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import httpx

from pictograph.settings import Settings
from tests.conftest import (
    ADMIN_DATABASE_URL,
    PROCESS_REDIS_URL,
    REDIS_CLUSTER,
    _with_database,
    open_test_redis,
    require_services,
)
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


def process_redis_env() -> dict[str, str]:
    """The processes' Redis: the process database, or the run's cluster."""
    return {"PICTOGRAPH_REDIS_URL": PROCESS_REDIS_URL,
            "PICTOGRAPH_REDIS_CLUSTER": "true" if REDIS_CLUSTER else "false"}


@asynccontextmanager
async def on_services(data_dir: Path, prefix: str) -> AsyncIterator[dict[str, str]]:
    """process_env for processes on PostgreSQL (a migrated database of their own, named
    from `prefix`) and the process Redis database (emptied before and after); the test
    is skipped when the services are unreachable (see require_services)."""
    await require_services()
    from pictograph.db import apply_migrations

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = open_test_redis(PROCESS_REDIS_URL)
    await redis.flushdb()
    try:
        url = _with_database(ADMIN_DATABASE_URL, name)
        await apply_migrations(url)
        yield process_env(data_dir, PICTOGRAPH_DATABASE_URL=url, **process_redis_env())
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def on_s3(env: dict[str, str], endpoint: str) -> dict[str, str]:
    """`env` with photos in a new bucket of the S3 server at `endpoint` (the run's moto,
    whose credentials the s3_endpoint fixture put in os.environ), created here as
    `pictograph migrate` would: processes on two machines share no disk."""
    from pictograph.storage import open_storage

    bucket = f"pictograph-processes-{secrets.token_hex(4)}"
    settings = Settings(data_dir=Path(env["PICTOGRAPH_DATA_DIR"]), s3_endpoint_url=endpoint,
                        s3_bucket=bucket)
    async with open_storage(settings) as storage:
        await storage.ensure_bucket()
    credentials = {name: os.environ[name] for name in ("AWS_ACCESS_KEY_ID",
                                                        "AWS_SECRET_ACCESS_KEY")}
    return {**env, **credentials, "PICTOGRAPH_S3_ENDPOINT_URL": endpoint,
            "PICTOGRAPH_S3_BUCKET": bucket}


@contextmanager
def serve(env: dict[str, str], *, workers: bool = True) -> Iterator[str]:
    """A server process; yields its base URL once /readyz answers 200."""
    with serve_process(env, workers=workers) as (base, _):
        yield base


@contextmanager
def serve_process(env: dict[str, str], *, workers: bool = True, processes: int = 1,
                  port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """As serve, with the process too, for tests that signal it; with `processes`, the
    supervisor of that many (`serve --processes`). The URLs it hands out are on its own
    port: `serve` derives PICTOGRAPH_PUBLIC_BASE_URL from --port when it is unset."""
    port = port or free_port()
    args = [sys.executable, "-m", "pictograph", "serve", "--port", str(port),
            "--processes", str(processes)]
    if not workers:
        args.append("--no-workers")
    with _running(args, env) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        yield base, process


@contextmanager
def servers_and_workers(env: dict[str, str], *, servers: int, processes: int,
                        workers: int) -> Iterator[tuple[list[str], list[subprocess.Popen[str]]]]:
    """`servers` servers of `processes` processes each, without workers of their own, and
    `workers` `pictograph worker` processes, all started at once (each start is mostly
    imports and connecting: one after another they add up); yields the servers' base
    URLs once every /readyz answers, and the workers."""
    with ExitStack() as stack:
        bases, started = [], []
        for _ in range(servers):
            port = free_port()
            bases.append(f"http://127.0.0.1:{port}")
            started.append(stack.enter_context(_running(
                [sys.executable, "-m", "pictograph", "serve", "--port", str(port),
                 "--processes", str(processes), "--no-workers"], env)))
        running = [stack.enter_context(_running([sys.executable, "-m", "pictograph", "worker"],
                                                env)) for _ in range(workers)]
        for base, server in zip(bases, started, strict=True):
            _wait_ready(base, server)
        for process in running:
            assert process.poll() is None, output(process)
        yield bases, running


@contextmanager
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with _running([sys.executable, "-m", "pictograph", "worker"], env) as process:
        time.sleep(0.5)
        assert process.poll() is None, output(process)
        yield process


@contextmanager
def _running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """The process, its output going to a file (see output()). Never a pipe: nobody reads
    a pipe while the test runs, and a process that logs more than the pipe holds (64 KiB:
    an outage's warnings) blocks on its next write, frozen mid-test."""
    log = tempfile.NamedTemporaryFile(
        "w+", prefix="pictograph-process-", suffix=".log", delete=False)
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    log.close()
    try:
        yield process
    except BaseException:
        print(f"--- output of {' '.join(args[2:])} ---\n{output(process)[-20_000:]}")
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.log_path.unlink(missing_ok=True)  # type: ignore[attr-defined]


def output(process: subprocess.Popen[str]) -> str:
    """Everything the process has written so far (stdout and stderr)."""
    return process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def read_until(process: subprocess.Popen[str], text: str, within: float = 30) -> None:
    """Waits (in a thread: it blocks) until the process has written `text`."""
    deadline = time.monotonic() + within
    while text not in output(process):
        if process.poll() is not None and text not in output(process):
            raise AssertionError(f"the process ended without saying {text!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the process did not say {text!r}")
        time.sleep(0.05)


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    for _ in range(150):
        if process.poll() is not None:
            raise AssertionError("server exited:\n" + output(process))
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not become ready:\n" + output(process))

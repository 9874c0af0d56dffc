"""Shared pieces of the benchmarks: an app on the chosen backend, timing, the table."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from pictograph.app import create_app
from pictograph.settings import Settings


async def with_backend(services: bool, work: Coroutine[Any, Any, None]) -> None:
    """Runs `work` on the embedded default, or on a throwaway PostgreSQL database and
    Redis database 13 (PICTOGRAPH_BENCH_REDIS_URL) on 127.0.0.1; with
    PICTOGRAPH_REDIS_CLUSTER=true, PICTOGRAPH_BENCH_REDIS_URL names a node of a cluster,
    which is flushed whole."""
    if not services:
        await work
        return
    redis_url = os.environ.get("PICTOGRAPH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    async with throwaway_services(redis_url) as database_url:
        os.environ["PICTOGRAPH_DATABASE_URL"] = database_url
        os.environ["PICTOGRAPH_REDIS_URL"] = redis_url
        # PostgreSQL refuses to start without a proper key.
        os.environ.setdefault("PICTOGRAPH_SECRET_KEY", secrets.token_urlsafe(48))
        await work


@asynccontextmanager
async def throwaway_services(redis_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database on 127.0.0.1 (PICTOGRAPH_BENCH_ADMIN_URL's server), its
    URL handed over, dropped afterwards; the Redis database flushed before and after."""
    import asyncpg
    from redis.asyncio import Redis, RedisCluster

    admin_url = os.environ.get("PICTOGRAPH_BENCH_ADMIN_URL",
                               "postgres://postgres@127.0.0.1:5432/test")
    database = f"pictograph_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    redis = (RedisCluster if on_cluster() else Redis).from_url(redis_url)
    try:
        await redis.flushdb()
        yield admin_url.rsplit("/", 1)[0] + "/" + database
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def seeded_viewers(redis_url: str, users: int, posts: int, prefix: str,
                         cluster: bool = False) -> AsyncIterator[tuple[Settings, list[Any]]]:
    """A throwaway network seeded by `pictograph seed` (seed 3, three celebrities, every
    rate limit lifted) and up to 50 viewers who follow 20 people (bench/load.py's
    viewers_of): the settings to build the app with, and the viewers."""
    from bench.load import viewers_of
    from pictograph.seed import run_seed

    async with throwaway_services(redis_url) as database_url:
        data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        unlimited = {name: "1000000/second" for name in Settings.model_fields
                     if name.startswith("rate_limit_")}
        settings = Settings(database_url=database_url, redis_url=redis_url,
                            redis_cluster=cluster, data_dir=data_dir, run_workers=False,
                            celebrity_threshold=max(users // 5, 2), log_level="WARNING",
                            secret_key=secrets.token_urlsafe(32), **unlimited)
        await run_seed(settings, users=users, posts=posts, celebrities=3, seed=3,
                       force=False)
        assert settings.secret_key is not None
        env = {"PICTOGRAPH_DATABASE_URL": database_url, "PICTOGRAPH_REDIS_URL": redis_url,
               "PICTOGRAPH_DATA_DIR": str(data_dir),
               "PICTOGRAPH_SECRET_KEY": settings.secret_key.get_secret_value()}
        viewers = await viewers_of(env, 50, seed=5)
        if not viewers:
            raise SystemExit("no seeded user follows 20 others and someone with 12 posts: "
                             "seed more (--users 150 --posts 1500 is about the least)")
        yield settings, viewers


def on_cluster() -> bool:
    """Whether the environment puts the services on a Redis Cluster (as Settings reads it)."""
    return os.environ.get("PICTOGRAPH_REDIS_CLUSTER", "").lower() in ("1", "true", "yes", "on")


def refuse_on_cluster(script: str, why: str, instead: str) -> None:
    """Stops a benchmark that measures one Redis server before it starts anything, saying
    so, when PICTOGRAPH_REDIS_CLUSTER asks for a cluster: a figure from one node of a
    cluster, labelled as the cluster's, would be wrong without a word."""
    if on_cluster():
        raise SystemExit(f"{script} does not run on a Redis Cluster: {why}. {instead}")


@asynccontextmanager
async def bench_app() -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app on the backend the PICTOGRAPH_* environment names (embedded by default),
    with a throwaway data dir, migrated, and an httpx client on it."""
    from pictograph.db import apply_migrations

    with tempfile.TemporaryDirectory() as data_dir:
        os.environ.setdefault("PICTOGRAPH_DATA_DIR", data_dir)
        # Benchmarks are not abuse: every rate limit lifted.
        unlimited = {name: "1000000/second" for name in Settings.model_fields
                     if name.startswith("rate_limit_")}
        settings = Settings(run_workers=False, argon2_time_cost=1, argon2_memory_kib=64,
                            argon2_parallelism=1, data_dir=Path(data_dir), **unlimited)
        if not settings.embedded_database:
            await apply_migrations(settings.resolved_database_url())
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                yield app, client


async def per_second(fn: Callable[[], Awaitable[object]], count: int, rounds: int = 5) -> float:
    """Median operations per second over `rounds` rounds of `count` calls."""
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            await fn()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


async def latencies_ms(fn: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


@contextmanager
def private_redis_server(prefix: str) -> Iterator[int | None]:
    """A redis-server of the bench's own on a free loopback port (None: not installed),
    with no persistence, killed afterwards: nothing another user of Redis keeps is
    touched, whatever the bench configures or flushes."""
    server = shutil.which("redis-server")
    if server is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(  # noqa: S603 - our own arguments
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            process.kill()
            process.wait()

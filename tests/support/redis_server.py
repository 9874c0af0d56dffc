"""A private redis-server for tests that break Redis itself: snapshot it, kill it, start
it again from its snapshot, fill it up. Never the shared server, which other suites use."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import REQUIRE_SERVICES
from tests.support.s3 import free_port

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
BUS_OFFSET = 10_000  # a cluster-enabled node listens on its port + 10000 for its bus


class RedisServer:
    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.port = _bus_free_port() if "--cluster-enabled" in options else free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis(port=self.port, decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        """Starts it (again), loading the snapshot in its directory if there is one."""
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "",
             "--appendonly", "no", *self.options],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError("redis-server did not start: "
                                         + (self.directory / "redis.log").read_text()) from None
                time.sleep(0.05)

    def save(self) -> None:
        with self.client() as client:
            client.save()

    def kill(self) -> None:
        """SIGKILL: nothing written since the last SAVE survives."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def _bus_free_port() -> int:
    """A free port below 55535 whose bus port (+10000) is free too: Redis refuses to
    start a cluster-enabled node on a higher one, and the kernel's ephemeral ports
    (what free_port hands out, 32768 and up) usually are higher. Drawn below those, and
    above the clusters' own ports (tests/support/redis_cluster.py, 21001 and near)."""
    for _ in range(200):
        port = random.randint(22_800, 32_700)  # noqa: S311 (a port, not a secret)
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise AssertionError("no free port pair below 55535 for a cluster-enabled redis-server")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def redis_server(directory: Path, *options: str) -> Iterator[RedisServer]:
    if shutil.which(REDIS_SERVER) is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed (PICTOGRAPH_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory, *options)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""`pictograph serve --processes N`: N processes on one port, on PostgreSQL and Redis, and
their metrics scraped as one; the embedded default refuses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import on_services, output, process_env, serve_process
from tests.support.s3 import free_port

HEALTHZ = 'pictograph_http_requests_total{method="GET",route="/healthz",status="200"}'
HEALTHZ_TIMES = 'pictograph_http_request_duration_seconds_count{route="/healthz"}'


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with on_services(tmp_path / "data", "pictograph_processes") as env:
        yield env


def test_the_embedded_default_refuses_several_processes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pictograph", "serve", "--processes", "2",
         "--port", str(free_port())],
        env=process_env(tmp_path / "data"), capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 2
    assert "--processes 2 needs services that every process can reach" in result.stderr
    assert ("the embedded cache (in-process fakeredis) lives inside one process and cannot "
            "be shared between processes: set PICTOGRAPH_REDIS_URL") in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "listening" not in result.stdout


def test_two_processes_answer_on_one_port_and_are_scraped_as_one(
    services: dict[str, str],
) -> None:
    metrics_port = free_port()
    env = {**services, "PICTOGRAPH_METRICS_PORT": str(metrics_port),
           "PICTOGRAPH_LOG_LEVEL": "INFO", "PICTOGRAPH_ACCESS_LOG": "true"}
    with serve_process(env, processes=2) as (base, supervisor):
        _wait_until_started(supervisor, 2)
        port = httpx.URL(base).port
        servers = _serving(psutil.Process(supervisor.pid), port)
        assert len(servers) == 2
        # Each in turn answers alone: the other is stopped (SIGSTOP), so it cannot accept
        # the connection. Briefly: uvicorn starts again a process that does not answer
        # its pings for 5 s.
        for server, requests in zip(servers, (3, 2), strict=True):
            with _alone(server, servers), httpx.Client(base_url=base) as client:
                for _ in range(requests):
                    assert client.get("/healthz").status_code == 200
                assert _connections(server, port) == 1
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        # Asked for, the processes write uvicorn's line per request (the readiness polls
        # are /readyz).
        logged = output(supervisor)
        assert logged.count('"GET /healthz HTTP/1.1" 200') == 5, logged
    # SIGTERM to the supervisor stopped its processes too.
    assert not [server for server in servers if _running(server)], output(supervisor)
    assert f"{HEALTHZ} 5.0" in scraped
    assert f"{HEALTHZ_TIMES} 5.0" in scraped


def _wait_until_started(supervisor: subprocess.Popen[str], processes: int) -> None:
    """Until every process has run its lifespan's start (the supervisor's /readyz came
    from the first one ready)."""
    deadline = time.monotonic() + 60
    while output(supervisor).count("Application startup complete.") < processes:
        assert supervisor.poll() is None and time.monotonic() < deadline, output(supervisor)
        time.sleep(0.05)


def _serving(supervisor: psutil.Process, port: int) -> list[psutil.Process]:
    """The supervisor's children that listen on the port (not multiprocessing's helper)."""
    return [child for child in supervisor.children()
            if any(connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
                   for connection in child.net_connections("tcp"))]


@contextmanager
def _alone(server: psutil.Process, servers: list[psutil.Process]) -> Iterator[None]:
    others = [other for other in servers if other.pid != server.pid]
    for other in others:
        other.suspend()
    try:
        yield
    finally:
        for other in others:
            other.resume()


def _connections(server: psutil.Process, port: int) -> int:
    """Connections of clients to the port that `server` holds."""
    return sum(1 for connection in server.net_connections("tcp")
               if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

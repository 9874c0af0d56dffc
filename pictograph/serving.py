"""How `pictograph serve` runs uvicorn: in this process, or as N processes on one port.

N processes share one listening socket under uvicorn's supervisor, which binds the port,
starts the processes (each imports the app through `process_app`), starts again one
that dies, and on SIGTERM stops them all, each finishing its requests and jobs first.
They share nothing else: sessions, caches, locks and rate limits are in Redis, the
truth in PostgreSQL, so they behave like N `serve` commands on one port.

Each process also runs the background workers, unless --no-workers, as a lone `serve`
does: they are built for many processes (a stream consumer per process in each
consumer group, periodic jobs behind a Redis lock through `workers.periodic.exclusively`,
an id node leased per process), and the supervisor stays a small loop with no event
loop, connections or app of its own."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import ExitStack
from socket import socket
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from pictograph.logs import configure_logging
from pictograph.metrics import processes_listener
from pictograph.settings import Settings, load_settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

# What an open socket costs the server is mostly what it holds while idle (issue 24):
WEBSOCKET_OPTIONS: dict[str, Any] = {
    # No permessage-deflate: every browser offers it, and each socket that takes it holds
    # a zlib compressor and decompressor for as long as it is open, some 30 KiB from the
    # handshake on and 37 KiB once a message went each way, more than the rest of the
    # socket together, to shrink live updates of a few hundred bytes. Clients see no
    # Sec-WebSocket-Extensions in the handshake's answer and send uncompressed frames.
    "ws_per_message_deflate": False,
}


def served_base_url(settings: Settings, host: str, port: int) -> Settings:
    """The settings with PICTOGRAPH_PUBLIC_BASE_URL, when it is unset, taken from where
    this server listens: upload tickets and photo URLs must point at the port clients
    reach, and a default of 8000 sends `serve --port 8811`'s clients to nobody. Behind a
    proxy only the operator knows the address, so there it must be set."""
    if "public_base_url" in settings.model_fields_set:
        return settings
    # A wildcard address is not one a client can use; this machine's loopback is.
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 (compared, not bound)
        host = "127.0.0.1"
    if ":" in host:  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return settings.model_copy(update={"public_base_url": f"http://{host}:{port}"})


def serve_here(settings: Settings, host: str, port: int) -> None:
    """One process: the app, and uvicorn, in this one."""
    from pictograph.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, **_server_options(settings))


def unshareable(settings: Settings) -> list[str]:
    """Why these settings cannot serve from several processes (nothing when they can)."""
    reasons = []
    if settings.embedded_redis:
        reasons.append("the embedded cache (in-process fakeredis) lives inside one process "
                       "and cannot be shared between processes: set PICTOGRAPH_REDIS_URL "
                       "to a Redis server")
    if settings.embedded_database:
        reasons.append("the embedded SQLite database is migrated by each process as it "
                       "starts: set PICTOGRAPH_DATABASE_URL to PostgreSQL")
    return reasons


def serve_processes(settings: Settings, host: str, port: int, processes: int) -> int:
    """`processes` processes on one port, until SIGTERM or SIGINT; the exit status."""
    # The processes read their settings from the environment (process_app); what the
    # command line chose goes there too.
    os.environ["PICTOGRAPH_RUN_WORKERS"] = "true" if settings.run_workers else "false"
    os.environ["PICTOGRAPH_PUBLIC_BASE_URL"] = settings.public_base_url
    with ExitStack() as stack:
        # Fresh for every run, as prometheus_client asks: values left by another run's
        # processes would be added in.
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="pictograph-metrics-"))
        if settings.metrics_port is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            stack.enter_context(processes_listener(settings, directory))
        except RuntimeError as error:  # the port is taken or not ours
            log.error("%s", error)
            return STARTUP_FAILURE
        config = uvicorn.Config(f"{__name__}:process_app", factory=True, host=host, port=port,
                                workers=processes, **_server_options(settings))
        supervisor = _Supervisor(config, [config.bind_socket()], directory)
        supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        # uvicorn stops the others then, but its own exit status would say all went well.
        log.error("a server process could not start (its log above says why); stopped all")
        return STARTUP_FAILURE
    return 0


def process_app() -> Starlette:
    """uvicorn's factory in each of the processes: settings from the environment that
    serve_processes prepared. The supervisor serves their metrics, as one."""
    from pictograph.app import create_app

    settings = load_settings(metrics_port=None)
    configure_logging(settings)
    return create_app(settings)


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "log_level": settings.log_level.lower(),
        "access_log": settings.access_log,
        # Forwarded headers are the app's business (PICTOGRAPH_TRUSTED_PROXIES): uvicorn's
        # own handling would believe them from 127.0.0.1 or FORWARDED_ALLOW_IPS.
        "proxy_headers": False,
        "lifespan": "on",
        **WEBSOCKET_OPTIONS,
        # A WebSocket message is held to the same bound as an HTTP body.
        "ws_max_size": settings.max_request_bytes,
        # On SIGTERM, requests in flight are waited for this long at most (then
        # cancelled); without it, one waiting on a service that does not answer would
        # hold the process for as long as that service's timeouts and retries add up to.
        "timeout_graceful_shutdown": settings.shutdown_grace,
    }


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling prometheus_client of every process that ended
    (mark_process_dead), however it ended: died and started again, replaced on SIGHUP,
    dropped on SIGTTOU, or stopped with the rest."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket],
                 metrics_directory: str) -> None:
        super().__init__(config, sockets)
        self.metrics_directory = metrics_directory
        self.running: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        # Called every half second, after the signals of that moment were handled.
        super().keep_subprocess_alive()
        self._forget_all_but({process.pid for process in self.processes
                              if process.pid is not None and process.exitcode is None})

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.running |= {process.pid for process in self.processes
                             if process.pid is not None}
            self._forget_all_but(set())

    def _forget_all_but(self, running: set[int]) -> None:
        for pid in self.running - running:
            mark_process_dead(pid, self.metrics_directory)
        self.running = running

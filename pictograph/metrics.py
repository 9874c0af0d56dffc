"""Prometheus metrics, in a registry owned by the app rather than a module global, and
served on a listener of their own: never on the public API port, where anyone could
read request volumes and error rates."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from pictograph.settings import Settings

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pictograph_http_requests_total",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pictograph_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "pictograph_graphql_errors_total",
            "GraphQL errors returned to clients, by extensions.code.",
            ["code"],
            registry=self.registry,
        )
        self.response_cache = Counter(
            "pictograph_response_cache_total",
            "Signed-in queries by what the response cache did: hit (answered from it), "
            "stored, miss (rendered, not stored), skip (not for the cache).",
            ["outcome"],
            registry=self.registry,
        )
        self.worker_jobs = Counter(
            "pictograph_worker_jobs_total",
            "Background jobs run, by worker and outcome.",
            ["worker", "outcome"],
            registry=self.registry,
        )


@asynccontextmanager
async def metrics_listener(settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    """Serves `metrics` on PICTOGRAPH_METRICS_HOST:PICTOGRAPH_METRICS_PORT while the block
    runs; nothing when the port is unset.

    prometheus_client's own server, on a thread: the registry's metrics are thread-safe,
    and a scrape never waits for the event loop. One process, one registry: the processes
    of `serve --processes N` leave the port to their supervisor (processes_listener)."""
    if settings.metrics_port is None:
        yield
        return
    server, thread = _listen(settings.metrics_host, settings.metrics_port, metrics.registry)
    try:
        yield
    finally:
        # shutdown() waits for the serving loop to notice (up to half a second).
        await asyncio.to_thread(_close, server, thread)


@contextmanager
def processes_listener(settings: Settings, directory: str) -> Iterator[None]:
    """Serves, as one, the metrics of every process that writes them into `directory`
    (prometheus_client's multiprocess mode: each process started with
    PROMETHEUS_MULTIPROC_DIR set to it keeps its values in files there, and a scrape
    adds counters and histograms up across them, ended processes included, so that a
    counter never goes down). Nothing when the port is unset."""
    if settings.metrics_port is None:
        yield
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    server, thread = _listen(settings.metrics_host, settings.metrics_port, registry)
    try:
        yield
    finally:
        _close(server, thread)


def _listen(host: str, port: int,
            registry: CollectorRegistry) -> tuple[WSGIServer, threading.Thread]:
    address = f"{host}:{port}"
    try:
        server, thread = start_http_server(port, host, registry=registry)
    except OSError as error:
        raise RuntimeError(f"cannot serve metrics on {address}: {error.strerror}") from error
    log.info("metrics on http://%s/metrics", address)
    return server, thread


def _close(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()

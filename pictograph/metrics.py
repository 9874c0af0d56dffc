"""Prometheus metrics, in a registry owned by the app rather than a module global, and
served on a listener of their own: never on the public API port, where anyone could
read request volumes and error rates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

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
    and a scrape never waits for the event loop. One process, one registry: when
    `serve --processes N` runs N uvicorn workers, they will need prometheus_client's
    multiprocess mode (PROMETHEUS_MULTIPROC_DIR) to be scraped as one."""
    if settings.metrics_port is None:
        yield
        return
    address = f"{settings.metrics_host}:{settings.metrics_port}"
    try:
        server, thread = start_http_server(settings.metrics_port, settings.metrics_host,
                                           registry=metrics.registry)
    except OSError as error:
        raise RuntimeError(f"cannot serve metrics on {address}: {error.strerror}") from error
    log.info("metrics on http://%s/metrics", address)
    try:
        yield
    finally:
        # shutdown() waits for the serving loop to notice (up to half a second).
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()

"""Prometheus metrics, in a registry owned by the app rather than a module global."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response


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


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.resources.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""Prometheus metrics on a listener of their own (PICTOGRAPH_METRICS_PORT), from API
and worker processes alike, and never on the public API port."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pictograph.app import create_app
from pictograph.settings import Settings
from tests.conftest import FAST_HASHING
from tests.support.processes import process_env, worker
from tests.support.s3 import free_port


async def test_metrics_are_not_served_on_the_api_port(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


async def test_metrics_on_their_own_port_count_requests_by_route_and_status(
    tmp_path: Path,
) -> None:
    port = free_port()
    app = create_app(Settings(data_dir=tmp_path, run_workers=False, metrics_port=port,
                              **FAST_HASHING))
    async with httpx.AsyncClient() as scraper:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.get("/healthz")
                await client.post("/graphql", content=b"{nope",
                                  headers={"content-type": "application/json"})
            text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
        # The listener goes with the app.
        with pytest.raises(httpx.ConnectError):
            await scraper.get(f"http://127.0.0.1:{port}/metrics")
    assert 'pictograph_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'pictograph_http_requests_total{method="POST",route="/graphql",status="400"}' in text
    assert "pictograph_http_request_duration_seconds_bucket" in text


def test_a_worker_process_serves_its_job_counts(tmp_path: Path) -> None:
    port = free_port()
    swept = 'pictograph_worker_jobs_total{outcome="ok",worker="token-sweeper"} 1.0'
    with worker(process_env(tmp_path / "data", PICTOGRAPH_METRICS_PORT=str(port))) as process:
        # The sweeper runs once as the worker starts; the deadline only turns a count
        # that never comes into a failure.
        deadline = time.monotonic() + 20
        text = ""
        while swept not in text:
            assert process.poll() is None and time.monotonic() < deadline, text
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.05)

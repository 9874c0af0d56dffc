"""The other benches in bench/ at a tiny size, so that no refactor breaks one unseen
(bench/feed.py, celebrity.py, redis_purge.py and load.py have files of their own). Each
runs as its README command does, in a process of its own, and must reach its table:
the figures at this size mean nothing, the run reaching the end does. Two of them once
stopped at a tiny size: follow_graph.py expected a full page of 100 followers, and
request_cost.py found no viewer to measure with and divided by zero."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_DATABASE_URL, PROCESS_REDIS_URL, REDIS_CLUSTER, require_services

ROOT = Path(__file__).resolve().parents[2]

# The benches that run in process take a single Redis here (a cluster run has its own
# tests of the cluster's paths).
pytestmark = pytest.mark.skipif(REDIS_CLUSTER, reason="the benches' tiny runs use one Redis")


def run_bench(script: str, *args: str, services: bool) -> str:
    # The bench picks its backend from PICTOGRAPH_* variables: none of the caller's. On
    # the services it gets a throwaway database and the tests' processes' Redis database,
    # which it flushes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICTOGRAPH_")}
    if services:
        env |= {"PICTOGRAPH_BENCH_REDIS_URL": PROCESS_REDIS_URL,
                "PICTOGRAPH_BENCH_SOAK_REDIS_URL": PROCESS_REDIS_URL,
                "PICTOGRAPH_BENCH_ADMIN_URL": ADMIN_DATABASE_URL}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                          capture_output=True, text=True, timeout=600, env=env, check=False,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    return done.stdout


@pytest.mark.parametrize("backend", ["embedded", "services"])
async def test_the_follow_graph_bench_runs(backend: str) -> None:
    services = backend == "services"
    if services:
        await require_services()
    out = run_bench("follow_graph.py", "--followers", "30", "--checks", "20",
                    "--requests", "3", *(["--services"] if services else []),
                    services=services)
    assert "can_view_photo, warm cache" in out, out
    assert "followers page of 100, cold" in out


async def test_the_media_bench_runs() -> None:
    await require_services()
    out = run_bench("media.py", "--posts", "2", "--requests", "10", "--photos", "1",
                    "--services", services=True)
    assert "GET /media thumbnail (200)" in out, out
    assert "a child process alone" in out


async def test_the_request_cost_bench_runs() -> None:
    await require_services()
    out = run_bench("request_cost.py", "--users", "150", "--posts", "1500", "--requests",
                    "3", "--rounds", "1", "--profile", "3", "--profile-hit",
                    services=True)
    assert "warm feed(first: 20), from the response cache: CPU per request" in out, out
    assert "uncached feed: at most 4 ms CPU per request" in out
    assert "Ordered by: internal time" in out  # the profile of the hit


async def test_the_soak_bench_runs_and_passes() -> None:
    await require_services()
    out = run_bench("soak.py", "--duration", "10", "--users", "2", "--seed-users", "80",
                    "--seed-posts", "200", services=True)
    assert "ERRORS" in out, out
    assert "->  PASS" in out, out


async def test_the_cluster_bench_runs_on_a_cluster_of_its_own() -> None:
    await require_services()
    out = run_bench("cluster.py", "--users", "150", "--posts", "1500", "--requests", "20",
                    "--rounds", "1", "--cluster-port", "21901", services=True)
    assert "warm feed(first: 20), Redis Cluster (3 masters, 3 replicas)" in out, out
    assert "cluster / one server (req/s, quietest rounds)" in out
    # The hit's reads on the cluster: one wait, whatever this machine's speed.
    assert re.search(r"one Redis wait per warm read on the cluster \(median\)\s+MET\n", out), out

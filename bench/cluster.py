"""The warm feed on a Redis Cluster beside one Redis server, in one run.

    python bench/cluster.py                          # starts its own cluster (ports 21701+)
    PICTOGRAPH_BENCH_CLUSTER_URL=redis://127.0.0.1:7000/0 python bench/cluster.py

Seeds the same network (`pictograph seed`, same seed) twice, on a throwaway PostgreSQL
database each: once with Redis at PICTOGRAPH_BENCH_REDIS_URL (one server, database 13 by
default) and once on a cluster of 3 masters and 3 replicas (its own, from redis-server,
unless PICTOGRAPH_BENCH_CLUSTER_URL names a node of one; either is flushed). Then sends
the frontend's warm feed query straight into the app, one request at a time, rotating
across viewers, in rounds that alternate between the two: requests per second (one at a
time, so each is its latency's inverse), CPU per request, Redis calls per request and
the Redis waits among them (calls sent while another of the same request is in flight,
as a cluster's hit reads the epochs on other slots beside the viewer's MGET, wait once).
The figure of each is the quietest round's. What a revocation's WAIT costs on the
cluster is bench/revocation.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from tqdm import tqdm

from bench._graphql import FEED
from bench._harness import print_table, seeded_viewers
from bench.request_cost import asgi_post
from pictograph.cache import cluster_reads, raw

REDIS_URL = os.environ.get("PICTOGRAPH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CLUSTER_URL = os.environ.get("PICTOGRAPH_BENCH_CLUSTER_URL")
# Issue 23: a cluster's warm feed stays within this share of one server's req/s.
TARGET_SHARE = 0.8


@dataclass
class Calls:
    """Redis calls of the request under way, and the waits among them."""

    calls: int = 0
    waits: int = 0
    in_flight: int = 0
    per_request: list[tuple[int, int]] = field(default_factory=list)

    async def around(self, call: Any, commands: int = 1) -> Any:
        self.calls += commands
        if self.in_flight == 0:
            self.waits += 1
        self.in_flight += 1
        try:
            return await call
        finally:
            self.in_flight -= 1

    def request_done(self) -> None:
        self.per_request.append((self.calls, self.waits))
        self.calls = self.waits = 0


@contextmanager
def counting(calls: Calls) -> Iterator[None]:
    """Every way the app reaches Redis, counted: a command, a pipeline, a packed call,
    a cluster's command and pipeline, and a cluster's reads packed by node (each of its
    commands a call, all of them one wait)."""
    originals = (Redis.execute_command, Pipeline.execute, raw.call,
                 RedisCluster.execute_command, ClusterPipeline.execute,
                 cluster_reads.read_by_node)

    def wrap(original: Any, skip_pipelines: bool = False) -> Any:
        async def counted(self: Any, *args: Any, **options: Any) -> Any:
            if skip_pipelines and isinstance(self, Pipeline):
                return await original(self, *args, **options)
            return await calls.around(original(self, *args, **options))
        return counted

    async def counted_call(redis: Any, packed: bytes) -> Any:
        return await calls.around(originals[2](redis, packed))

    async def counted_by_node(cluster: Any, commands: Any) -> Any:
        return await calls.around(originals[5](cluster, commands), len(commands))

    Redis.execute_command = wrap(originals[0], skip_pipelines=True)  # type: ignore[method-assign]
    Pipeline.execute = wrap(originals[1])  # type: ignore[method-assign]
    raw.call = counted_call
    RedisCluster.execute_command = wrap(originals[3])  # type: ignore[method-assign]
    ClusterPipeline.execute = wrap(originals[4])  # type: ignore[method-assign]
    cluster_reads.read_by_node = counted_by_node
    try:
        yield
    finally:
        (Redis.execute_command, Pipeline.execute, raw.call,  # type: ignore[method-assign]
         RedisCluster.execute_command, ClusterPipeline.execute,
         cluster_reads.read_by_node) = originals


@asynccontextmanager
async def a_cluster(first_port: int) -> AsyncIterator[str]:
    """PICTOGRAPH_BENCH_CLUSTER_URL's cluster, or one of the bench's own."""
    if CLUSTER_URL:
        yield CLUSTER_URL
        return
    from tests.support.redis_cluster import redis_cluster

    with tempfile.TemporaryDirectory(prefix="pictograph-bench-cluster-") as directory, \
            redis_cluster(Path(directory), first_port) as cluster:
        yield cluster.url


@dataclass
class Backend:
    name: str
    app: Any
    bodies: list[tuple[bytes, str]]
    calls: Calls = field(default_factory=Calls)
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


@asynccontextmanager
async def seeded(name: str, redis_url: str, cluster: bool,
                 args: argparse.Namespace) -> AsyncIterator[Backend]:
    from pictograph.app import create_app

    # Settings and the bench's helpers read the cluster switch from the environment.
    os.environ["PICTOGRAPH_REDIS_CLUSTER"] = "true" if cluster else "false"
    async with seeded_viewers(redis_url, args.users, args.posts,
                              f"pictograph-bench-{name}-", cluster) as (settings, viewers):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            bodies = [(orjson.dumps({"query": FEED, "variables": {"first": 20}}), v.token)
                      for v in viewers]
            for _ in range(2):  # renders and stores, then a hit that learns the epochs
                for body, token in bodies:
                    await asgi_post(app, body, token)
            yield Backend(name, app, bodies)


async def one_round(backend: Backend, requests: int, label: str) -> None:
    backend.calls.per_request.clear()
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    with counting(backend.calls):
        for i in tqdm(range(requests), desc=label, unit="req"):
            body, token = backend.bodies[i % len(backend.bodies)]
            await asgi_post(backend.app, body, token)
            backend.calls.request_done()
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    backend.rates.append(requests / wall)
    backend.cpu.append(cpu / requests * 1000)


def describe(backend: Backend) -> tuple[str, str]:
    calls = [c for c, _ in backend.calls.per_request]
    waits = [w for _, w in backend.calls.per_request]
    return (f"{max(backend.rates):,.0f} req/s one at a time, {min(backend.cpu):.2f} ms CPU/req",
            f"{statistics.median(calls):.0f} calls, {statistics.median(waits):.0f} wait "
            f"(min..max calls {min(calls)}..{max(calls)}, waits {min(waits)}..{max(waits)})")


async def run(args: argparse.Namespace) -> None:
    async with a_cluster(args.cluster_port) as cluster_url, \
            seeded("one-server", REDIS_URL, False, args) as single:
        async with seeded("cluster", cluster_url, True, args) as cluster:
            for number in range(1, args.rounds + 1):
                for backend in (single, cluster):
                    os.environ["PICTOGRAPH_REDIS_CLUSTER"] = (
                        "true" if backend is cluster else "false")
                    await one_round(backend, args.requests,
                                    f"warm feed on {backend.name} ({number}/{args.rounds})")
            share = max(cluster.rates) / max(single.rates)
            single_rate, single_calls = describe(single)
            cluster_rate, cluster_calls = describe(cluster)
            _, waits = zip(*cluster.calls.per_request, strict=True)
            rows = [
                ("warm feed(first: 20), one Redis server", single_rate),
                ("  Redis per request (median)", single_calls),
                ("warm feed(first: 20), Redis Cluster (3 masters, 3 replicas)", cluster_rate),
                ("  Redis per request (median)", cluster_calls),
                ("cluster / one server (req/s, quietest rounds)", f"{share:.0%}"),
                (f"target: cluster >= {TARGET_SHARE:.0%} of one server",
                 "MET" if share >= TARGET_SHARE else "NOT MET"),
                ("target: one Redis wait per warm read on the cluster (median)",
                 "MET" if statistics.median(waits) == 1 else "NOT MET"),
            ]
    print_table(f"The warm feed on one Redis and on a cluster ({args.users:,} users, "
                f"{args.posts:,} posts, PostgreSQL, one request at a time in process, "
                f"{args.rounds} rounds of {args.requests})", rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500, help="per round and backend")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cluster-port", type=int, default=21701,
                        help="the first of the six ports of the bench's own cluster "
                             "(below 22768: each node's bus is its port + 10000)")
    asyncio.run(run(parser.parse_args()))

"""A private Redis Cluster for tests: 3 masters with a replica each, from Debian's
redis-server, on six consecutive loopback ports. Never the shared server.

Each node's cluster bus listens on its port + 10000, so the ports must stay below 55535.
Run it by hand with `python -m tests.support.redis_cluster [FIRST_PORT]` (it stays up
until interrupted)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

from tests.support.redis_server import REDIS_SERVER

REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
NODES = 6  # 3 masters, 1 replica each
BUS_OFFSET = 10_000  # Redis puts a node's cluster bus on its port + 10000
DEFAULT_FIRST_PORT = 22001


class RedisCluster:
    def __init__(self, directory: Path, first_port: int) -> None:
        if first_port + NODES - 1 + BUS_OFFSET > 65535:
            raise ValueError("cluster ports must stay below 55535 (the bus is port + 10000)")
        self.directory = directory
        self.ports = list(range(first_port, first_port + NODES))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """One node's address: the client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, port: int) -> Redis:
        return Redis(port=port, decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        for port in self.ports:
            if _in_use(port) or _in_use(port + BUS_OFFSET):
                raise AssertionError(f"port {port} (or its bus) is taken: pick other ports")
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [REDIS_CLI, "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)
        self.wait_ok()

    def start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        log = (node_dir / "redis.log").open("ab")
        self.processes[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client(port) as client:
                    if client.ping():
                        return
            except Exception:
                if time.monotonic() > deadline or self.processes[port].poll() is not None:
                    raise AssertionError(f"redis-server on {port} did not start: "
                                         + (node_dir / "redis.log").read_text()) from None
                time.sleep(0.05)

    def wait_ok(self, within: float = 30.0) -> None:
        """Until every node says cluster_state:ok and knows all six nodes (a node that
        has not yet heard of the others answers ok to a partial picture), and every
        replica has its first copy (a master waits for its replica's acknowledgement on
        revocations only once that replica is online: cache/replicas.py)."""
        deadline = time.monotonic() + within
        while True:
            states = []
            for port in self.ports:
                with self.client(port) as client:
                    info = client.cluster("info")
                    replication = client.info("replication")
                states.append(info.get("cluster_state") == "ok"
                              and int(info.get("cluster_known_nodes", 0)) == NODES
                              and replication.get("master_link_status", "up") == "up")
            if all(states):
                return
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def kill(self, port: int) -> None:
        """SIGKILL, as a crashed machine: no shutdown, no goodbye to the cluster."""
        process = self.processes[port]
        process.kill()
        process.wait()

    def restart(self, port: int) -> None:
        """The node again, from its directory: its nodes.conf keeps its id, and a master
        replaced by a failover meanwhile comes back as its replacement's replica."""
        self.start_node(port)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


# The clusters this process started, by first port: a test that kills a node and starts
# it again (tests/faults/test_failover.py) finds the processes here.
RUNNING: dict[int, RedisCluster] = {}


@contextmanager
def redis_cluster(directory: Path, first_port: int = DEFAULT_FIRST_PORT) -> Iterator[RedisCluster]:
    if shutil.which(REDIS_SERVER) is None or shutil.which(REDIS_CLI) is None:
        raise AssertionError("redis-server and redis-cli are needed for a cluster")
    cluster = RedisCluster(directory, first_port)
    try:
        cluster.start()
        RUNNING[first_port] = cluster
        yield cluster
    finally:
        RUNNING.pop(first_port, None)
        cluster.stop()


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)  # so the nodes are stopped on a plain kill
    first = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FIRST_PORT
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as scratch, redis_cluster(
            Path(scratch), first) as running:
        print(f"cluster up: {running.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

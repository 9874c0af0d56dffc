"""Child processes for the benchmarks that drive a real server: start, wait, measure."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process with its output in a file (a pipe nobody reads could fill up and
    stall it); terminated on the way out."""
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=env, stdout=out,  # noqa: S603
                                   stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextlib.asynccontextmanager
async def ready_server(args: list[str], env: dict[str, str], base: str,
                       log: Path) -> AsyncIterator[subprocess.Popen]:
    """A server process, handed over once its /readyz answers 200."""
    with child(args, env, log) as process:
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(int(READY_TIMEOUT / 0.1)):
                if process.poll() is not None:
                    raise SystemExit("the server exited:\n" + tail(log))
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{base}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the server did not become ready:\n" + tail(log))
        yield process


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of the process and every process below it (a server's workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):  # gone meanwhile
            total += cpu_seconds(current)
        pending += children.get(current, [])
    return total


async def settle(pid: int, within: float = READY_TIMEOUT) -> None:
    """Waits (boundedly) until the process has used no CPU for half a second."""
    deadline = time.monotonic() + within
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now

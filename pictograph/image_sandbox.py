"""process_image in a child process of its own, with a CPU limit the kernel enforces.

A decoder stuck in a costly file (a progressive JPEG of needless scans, a codec's slow path)
cannot be interrupted from Python while it runs in C, and a thread keeps its consumer for as
long as the decoder likes. A process can be stopped: the kernel sends it SIGXCPU once it has
used its CPU seconds (RLIMIT_CPU), and the parent kills it when it outlives a wall-clock
backstop (a process that hangs without using CPU). Either way the photo fails with a reason,
for good: the file is at fault, so trying it again would cost the same.

One child per photo: a limit per photo is then simply the child's own, a dying child can take
nothing else with it (unlike a shared process pool, which breaks for every job in it), a
decoder that a crafted file subverts never sees the next person's photo, and each photo's
memory goes back to the system. Children are forked by multiprocessing's fork server, which
has Pillow and this package imported already: a child costs about 20 ms of CPU, and a 12 Mpx
photo some 35 ms more for touching fresh memory (bench/media.py).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import logging
import multiprocessing
import multiprocessing.forkserver
import resource
import signal
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from PIL import Image, MpoImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401

from pictograph.images import ImageRejected, Variant, process_image

# Pillow imports its format plugins (and TIFF, for EXIF) when first needed: done here, the fork
# server has them and no child imports them again per photo.
Image.preinit()

log = logging.getLogger(__name__)

TOO_SLOW = "the image takes too long to process"
CRASHED = "the image could not be processed"
_CONTEXT = multiprocessing.get_context("forkserver")
_EXIT_GRACE = 1.0  # seconds a child that has answered gets to exit before it is killed
# Outcome sent back by a child: the variants, or the reason it was refused.
_Outcome = tuple[bool, list[Variant] | str]


def wall_seconds(cpu_seconds: int) -> float:
    """The backstop for a child that hangs without using CPU: generous, because on a busy
    machine a photo waits for a core, and a photo that legitimately took this long would
    rather fail than hold its consumer."""
    return 2.0 * cpu_seconds + 5.0


def start() -> None:
    """Starts the fork server now rather than with the first photo. Blocks for a moment."""
    _configure()
    multiprocessing.forkserver.ensure_running()


async def process_image_isolated(
    data: bytes, *, max_pixels: int, cpu_seconds: int, wall_timeout: float | None = None
) -> list[Variant]:
    """process_image(data) in a child process limited to cpu_seconds of CPU; ImageRejected
    for a file it refuses, takes too long on, or dies of. A failure to start the child (the
    machine is out of processes or memory) raises OSError instead: that is worth a retry."""
    child = _Child(data, max_pixels, cpu_seconds,
                   wall_seconds(cpu_seconds) if wall_timeout is None else wall_timeout)
    try:
        ok, result = await asyncio.to_thread(child.run)
    finally:
        # Cancelled (the worker stops): the photo is not at fault, so the job stays queued
        # for a later delivery; the child must not go on using a core meanwhile.
        child.kill()
    if not ok:
        raise ImageRejected(str(result))
    assert isinstance(result, list)
    return result


class _Child:
    """One photo's child process, started, awaited and reaped on a thread of its own."""

    def __init__(self, data: bytes, max_pixels: int, cpu_seconds: int,
                 wall_timeout: float) -> None:
        self._args = (data, max_pixels, cpu_seconds)
        self._wall_timeout = wall_timeout
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._killed = False

    def run(self) -> _Outcome:
        _configure()
        receiving, sending = _CONTEXT.Pipe(duplex=False)
        process = _CONTEXT.Process(target=_work, args=(sending, *self._args), daemon=True,
                                   name="pictograph-image")
        try:
            process.start()
        finally:
            sending.close()  # the child's end: once it exits, recv() sees end-of-file
        with self._lock:
            self._process = process
            killed = self._killed
        if killed:  # cancelled while it was starting
            process.kill()
        try:
            return self._outcome(process, receiving)
        finally:
            receiving.close()
            process.join(_EXIT_GRACE)  # it exits right after answering
            if process.exitcode is None:
                process.kill()
                process.join()

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            process = self._process
        if process is not None and process.exitcode is None:
            process.kill()

    def _outcome(self, process: BaseProcess, receiving: Connection) -> _Outcome:
        if not receiving.poll(self._wall_timeout):
            log.warning("image processing killed after %.0f s (wall clock)", self._wall_timeout)
            return False, TOO_SLOW
        try:
            return receiving.recv()  # type: ignore[no-any-return]
        except EOFError:  # it died before answering
            pass
        process.join()
        with self._lock:
            if self._killed:
                return False, "cancelled"  # nobody waits for this answer
        if process.exitcode == -signal.SIGXCPU:
            log.warning("image processing stopped at its CPU limit (%d s)", self._args[2])
            return False, TOO_SLOW
        log.error("image processing died with exit code %s", process.exitcode)
        return False, CRASHED


def _work(results: Connection, data: bytes, max_pixels: int, cpu_seconds: int) -> None:
    """The child's whole life."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGXCPU at the soft limit ends the process (its default action); SIGKILL a second later
    # if anything ever ignored that. No core files from either.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    hard = cpu_seconds + 1 if hard == resource.RLIM_INFINITY else min(hard, cpu_seconds + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (min(cpu_seconds, hard), hard))
    outcome: _Outcome
    try:
        outcome = (True, process_image(data, max_pixels=max_pixels))
    except ImageRejected as rejected:
        outcome = (False, rejected.reason)
    results.send(outcome)
    results.close()


@functools.cache
def _configure() -> None:
    _CONTEXT.set_forkserver_preload([__name__, *_imports_of_main()])


def _imports_of_main() -> list[str]:
    """The modules the main script imports. Python 3.11's fork server runs that script again
    in every child (a preloaded __main__ never reaches it: CPython gh-98552), which costs a
    `pictograph` or `pytest` command a tenth of a second per photo; with these imported in
    the fork server first, the run imports nothing."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None:
        return []
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:  # the statements a run executes, not those under `if __name__`
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    # Only what this process did import: importing it again in the fork server is then safe.
    return [name for name in names if name in sys.modules]


"""Photos that would cost minutes to decode fail in seconds, once, in a process of their own
that nothing outlives, while everyone else's photos go on being processed."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from pictograph import events, image_sandbox
from pictograph.cache import keys
from pictograph.images import MAX_JPEG_SCANS, ImageRejected
from pictograph.models import Post
from pictograph.posts import processing
from pictograph.resources import Resources
from pictograph.schema.node import decode_global_id, encode_global_id
from pictograph.workers import media
from pictograph.workers.media import GROUP
from tests.faults.stack import wait_until
from tests.media.jpeg_bombs import progressive_jpeg
from tests.support.graphql import gql, sign_up
from tests.support.photos import jpeg, post_photo, process_media

POST = "query($id: ID!) { post(id: $id) { status failureReason } }"
TOO_MANY_SCANS = f"the JPEG image has more than {MAX_JPEG_SCANS} scans"


def cpu_bomb() -> bytes:
    """40 Mpx and exactly as many scans as allowed, all refinements: it passes the scan
    count and still takes 4.5 s of CPU on the 2-core machine this was written on."""
    return progressive_jpeg(6320, 6320, MAX_JPEG_SCANS)


def scan_bomb() -> bytes:
    """The attack of the issue, smaller: a thousand scans, 9 s of CPU if decoded."""
    return progressive_jpeg(3000, 3000, 1_000)


@pytest.fixture
def one_cpu_second(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "settings",
                        resources.settings.model_copy(update={"media_cpu_seconds": 1}))


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How many times the media worker took each post's job in hand."""
    counts: Counter[int] = Counter()
    process_post = processing.process_post

    async def counted(resources: Resources, post_id: int) -> None:
        counts[post_id] += 1
        await process_post(resources, post_id)

    monkeypatch.setattr(processing, "process_post", counted)
    return counts


async def _post(client: httpx.AsyncClient, token: str, data: bytes) -> int:
    result = await post_photo(client, token, data)
    assert not result.get("errors"), result
    decoded = decode_global_id(result["data"]["createPost"]["id"])
    assert decoded is not None
    return decoded[1]


async def _seen_by_author(client: httpx.AsyncClient, token: str, post_id: int) -> dict[str, str]:
    result = await gql(client, POST, {"id": encode_global_id("Post", post_id)}, token=token)
    return result["data"]["post"]


def _image_processes(root: psutil.Process | None = None) -> list[psutil.Process]:
    """The processes the fork server under `root` (this one by default) runs: one per photo
    being processed."""
    servers = [child for child in (root or psutil.Process()).children()
               if "multiprocessing.forkserver" in " ".join(_cmdline(child))]
    return [job for server in servers for job in server.children() if _alive(job)]


async def _processing(root: psutil.Process | None = None) -> bool:
    return bool(_image_processes(root))


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone meanwhile
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _pending(resources: Resources) -> int:
    return (await resources.redis.xpending(keys.event_stream(events.MEDIA), GROUP))["pending"]


async def test_a_photo_needing_more_cpu_than_allowed_fails_after_one_attempt(
    client: httpx.AsyncClient, resources: Resources, one_cpu_second: None,
    attempts: Counter[int],
) -> None:
    token = await sign_up(client, "heavy")
    post_id = await _post(client, token, cpu_bomb())
    assert await process_media(resources) == 1
    assert await _seen_by_author(client, token, post_id) == {
        "status": "FAILED", "failureReason": image_sandbox.TOO_SLOW}
    assert attempts == {post_id: 1}  # the file is at fault: no retries at full cost
    assert await _pending(resources) == 0


async def test_bombs_queued_first_do_not_hold_up_other_peoples_photos(
    client: httpx.AsyncClient, resources: Resources, one_cpu_second: None,
    attempts: Counter[int],
) -> None:
    attacker = await sign_up(client, "attacker")
    bystander = await sign_up(client, "bystander")
    scans = await _post(client, attacker, scan_bomb())
    cpu = await _post(client, attacker, cpu_bomb())
    photo = await _post(client, bystander, jpeg(1600, 1200))

    async def all_processed() -> bool:
        return not await Post.filter(status="PROCESSING").exists()

    stop = asyncio.Event()
    worker = asyncio.create_task(media.run_media_worker(resources, stop))  # both consumers
    try:
        await wait_until(all_processed, "every photo is processed", within=60)
    finally:
        stop.set()
        await worker
    assert await _seen_by_author(client, bystander, photo) == {
        "status": "READY", "failureReason": None}
    assert await _seen_by_author(client, attacker, scans) == {
        "status": "FAILED", "failureReason": TOO_MANY_SCANS}
    assert await _seen_by_author(client, attacker, cpu) == {
        "status": "FAILED", "failureReason": image_sandbox.TOO_SLOW}
    assert attempts == {scans: 1, cpu: 1, photo: 1}
    assert await _pending(resources) == 0


async def test_a_worker_stopped_mid_photo_ends_its_process_and_keeps_the_job(
    client: httpx.AsyncClient, resources: Resources, attempts: Counter[int],
) -> None:
    token = await sign_up(client, "patient")
    post_id = await _post(client, token, cpu_bomb())
    worker = asyncio.create_task(media.run_media_worker(resources, asyncio.Event()))
    await wait_until(_processing, "the photo's process runs")
    [child] = _image_processes()
    child.suspend()  # it cannot finish first, however fast the machine
    # What the runner does to a worker that outlasts the grace it gets on shutdown.
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker

    async def ended() -> bool:
        return not _alive(child)

    await wait_until(ended, "the photo's process ends")
    # Not the photo's fault: it stays PROCESSING, its job pending for the next worker.
    assert (await Post.get(id=post_id)).status == "PROCESSING"
    assert attempts == {post_id: 1}
    assert await _pending(resources) == 1


async def test_a_process_that_hangs_is_killed_at_the_wall_clock_backstop() -> None:
    processing = asyncio.create_task(image_sandbox.process_image_isolated(
        cpu_bomb(), max_pixels=40_000_000, cpu_seconds=600, wall_timeout=2))
    await wait_until(_processing, "the photo's process runs")
    [child] = _image_processes()
    child.suspend()  # hung without using CPU: only the backstop can end it
    with pytest.raises(ImageRejected, match=image_sandbox.TOO_SLOW):
        await processing
    assert not _alive(child)


_ORPHAN = """
import asyncio, sys
from pictograph import image_sandbox
data = open(sys.argv[1], "rb").read()
asyncio.run(image_sandbox.process_image_isolated(data, max_pixels=40_000_000, cpu_seconds=2))
"""


async def test_a_killed_parent_leaves_nothing_behind_past_the_cpu_limit(
    tmp_path: Path,
) -> None:
    """SIGKILL gives the parent no chance to stop anything: its photo's process ends at its
    CPU limit, unable to deliver, and the fork server once nobody is left to use it."""
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(cpu_bomb())
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", _ORPHAN, str(bomb))
    try:
        root = psutil.Process(parent.pid)
        await wait_until(lambda: _processing(root), "the photo's process runs")
        family = root.children(recursive=True)  # with the fork server and resource tracker
    finally:
        parent.kill()
        await parent.wait()

    async def all_gone() -> bool:
        return not any(_alive(process) for process in family)

    await wait_until(all_gone, "every process the parent started ends")

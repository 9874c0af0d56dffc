"""What photos cost: minting media URLs in a page, serving /media, processing an upload
in this process and in a child process of its own (the media worker's way).

    python bench/media.py              # embedded default (SQLite + fakeredis, local disk)
    python bench/media.py --services   # PostgreSQL + Redis on 127.0.0.1 (a throwaway database)

Prints medians and ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from tqdm import tqdm

from bench._harness import (
    bench_app,
    latencies_ms,
    per_second,
    percentile,
    print_table,
    with_backend,
)
from pictograph import image_sandbox
from pictograph.db import using_database
from pictograph.images import Variant, process_image
from pictograph.storage.signing import media_url
from tests.support.graphql import gql, relate_ok, sign_up, user_id
from tests.support.photos import jpeg, post_photo, process_media

WITH_MEDIA = """query($u: String!, $n: Int!) {
  user(username: $u) {
    posts(first: $n) { edges { node { id caption thumb: media(size: THUMBNAIL) { url } } } }
  }
}"""
WITHOUT_MEDIA = """query($u: String!, $n: Int!) {
  user(username: $u) { posts(first: $n) { edges { node { id caption } } } }
}"""
ROUNDS = 5


async def main(posts: int, requests: int, photos: int) -> None:
    async with bench_app() as (app, client):
        resources = app.state.resources
        with using_database(resources.database):
            await resources.redis.flushdb()
            author = await sign_up(client, "author")
            fan = await sign_up(client, "fan")
            await relate_ok(client, "follow", fan, await user_id(client, "author"))
            for i in tqdm(range(posts), desc="uploading + processing posts", unit="post"):
                data = jpeg(480 + i, 360)  # distinct small photos
                result = await post_photo(client, author, data, caption=f"photo {i}")
                assert not result.get("errors"), result
                assert await process_media(resources) == 1

            headers = {"Authorization": f"Bearer {fan}"}
            variables = {"u": "author", "n": posts}

            def page(query: str) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    response = await client.post("/graphql", headers=headers,
                                                 json={"query": query, "variables": variables})
                    edges = response.json()["data"]["user"]["posts"]["edges"]
                    assert len(edges) == posts
                return run

            with_media, without_media = page(WITH_MEDIA), page(WITHOUT_MEDIA)
            for warm in (with_media, without_media, with_media, without_media):
                await warm()
            print("timing feed pages ...")
            minted: list[float] = []
            plain: list[float] = []
            for _ in range(ROUNDS):  # interleaved, so drift hits both sides alike
                minted += await latencies_ms(with_media, max(1, requests // 10))
                plain += await latencies_ms(without_media, max(1, requests // 10))

            settings = resources.settings
            sign_rate = _sync_rate(lambda: media_url(
                settings.public_base_url, resources.secret_key, 1, 2, "THUMBNAIL",
                int(time.time()) + 300), 20_000)

            seen = await gql(client, WITH_MEDIA, variables, token=fan)
            url = urlsplit(seen["data"]["user"]["posts"]["edges"][0]["node"]["thumb"]["url"])
            media_path = f"{url.path}?{url.query}"
            statuses: set[int] = set()

            async def get_media() -> None:
                response = await client.get(media_path)  # never follows a redirect
                statuses.add(response.status_code)
                assert response.status_code in (200, 302), response.status_code

            etag = (await client.get(media_path)).headers.get("etag", "")

            async def get_unchanged() -> None:  # every check, no file: the 304 path
                response = await client.get(media_path, headers={"if-none-match": etag})
                assert response.status_code in (302, 304), response.status_code

            async def get_health() -> None:
                assert (await client.get("/healthz")).status_code == 200

            for _ in range(10):
                await get_media()
                await get_health()
            print("timing /media and /healthz ...")
            media_rate = await per_second(get_media, requests, ROUNDS)
            health_rate = await per_second(get_health, requests, ROUNDS)
            unchanged_rate = await per_second(get_unchanged, requests, ROUNDS)
            media_ms = await latencies_ms(get_media, requests)
            health_ms = await latencies_ms(get_health, requests)

    big = _twelve_megapixels()
    print("timing process_image, in this process and in a child process ...")
    image_sandbox.start()
    process_image(big)  # warm-up: imports, allocator
    await _isolated(big, settings.media_cpu_seconds)  # warm-up: the fork server's first child
    in_process_ms: list[float] = []
    isolated_ms: list[float] = []
    for _ in tqdm(range(photos), desc="process_image 4000x3000", unit="photo"):
        # Interleaved, so drift on a shared machine hits both alike.
        started = time.perf_counter()
        variants = process_image(big)
        in_process_ms.append((time.perf_counter() - started) * 1000)
        assert [v.size for v in variants] == ["THUMBNAIL", "FULL"]
        started = time.perf_counter()
        variants = await _isolated(big, settings.media_cpu_seconds)
        isolated_ms.append((time.perf_counter() - started) * 1000)
        assert [v.size for v in variants] == ["THUMBNAIL", "FULL"]
    per_photo, isolated = statistics.median(in_process_ms), statistics.median(isolated_ms)
    small = jpeg(64, 64)
    child_ms = [await _timed(_isolated(small, settings.media_cpu_seconds))
                for _ in range(ROUNDS * 4)]

    minted_p50, plain_p50 = statistics.median(minted), statistics.median(plain)
    backend = "embedded" if settings.embedded_redis else "postgres+redis"
    print_table(
        f"Media ({backend}, {type(resources.storage).__name__}, page of {posts})",
        [
            (f"feed page of {posts} with thumb URLs", _latency(minted)),
            (f"feed page of {posts} without media", _latency(plain)),
            ("ratio with / without (p50)", f"{minted_p50 / plain_p50:.2f}x "
             f"(+{(minted_p50 - plain_p50) / posts:.2f} ms per post)"),
            ("media_url() signing alone", f"{sign_rate:,.0f} URLs/s (median of 5 rounds)"),
            (f"GET /media thumbnail ({'/'.join(map(str, sorted(statuses)))})",
             f"{media_rate:,.0f} req/s (median of 5), {_latency(media_ms)}"),
            ("GET /media, If-None-Match (checks only)", f"{unchanged_rate:,.0f} req/s"),
            ("GET /healthz baseline",
             f"{health_rate:,.0f} req/s (median of 5), {_latency(health_ms)}"),
            ("ratio /media / /healthz throughput", f"{media_rate / health_rate:.2f}x"),
            (f"process_image 4000x3000 ({len(big) / 1e6:.1f} MB JPEG), in this process",
             f"{per_photo:,.0f} ms/photo (median of {photos}), "
             f"{12.0 / (per_photo / 1000):.1f} Mpx/s"),
            ("the same in a child process with a CPU limit (the worker's way)",
             f"{isolated:,.0f} ms/photo (median of {photos}), "
             f"+{isolated - per_photo:,.0f} ms ({isolated / per_photo - 1:+.0%})"),
            ("a child process alone (a 64x64 photo, isolated)",
             f"{statistics.median(child_ms):,.1f} ms (median of {len(child_ms)})"),
        ],
    )


async def _isolated(data: bytes, cpu_seconds: int) -> list[Variant]:
    return await image_sandbox.process_image_isolated(
        data, max_pixels=40_000_000, cpu_seconds=cpu_seconds)


async def _timed(work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


def _sync_rate(fn: Callable[[], object], count: int) -> float:
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(count):
            fn()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def _twelve_megapixels() -> bytes:
    """A 4000x3000 JPEG (quality 90) with gradients and noise, so it compresses like a photo."""
    size = (4000, 3000)
    ramp = Image.linear_gradient("L")
    gradient = Image.merge("RGB", (ramp.resize(size), ramp.rotate(90).resize(size),
                                   ramp.rotate(45).resize(size)))
    noise = Image.merge("RGB", [Image.effect_noise(size, 48) for _ in range(3)])
    out = io.BytesIO()
    Image.blend(gradient, noise, 0.35).save(out, "JPEG", quality=90)
    return out.getvalue()


def _latency(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database)")
    args = parser.parse_args()
    asyncio.run(with_backend(args.services, main(args.posts, args.requests, args.photos)))

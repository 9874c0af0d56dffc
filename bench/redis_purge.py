"""How long a Redis that may have rolled back stays unusable: the purge's rate.

    python bench/redis_purge.py                  # 200,000 cache keys, 20,000 stream entries
    python bench/redis_purge.py --keys 2000000

Starts a private redis-server (nothing else is touched), fills it with cache-like keys
(on as many hash tags as there are keys, as the caches are) and a stream, and runs the
purge a process runs after a restart or a failover (cache/trust.py): every key but the
durable ones goes. Prints keys per second, wall and client CPU, and the target: a
million-key cache purged within 10 s (requests that need Redis answer "temporarily
unavailable" meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from tqdm import tqdm

from bench._harness import print_table, private_redis_server
from pictograph.cache import keys
from pictograph.cache.trust import purge

TARGET_KEYS_PER_SECOND = 100_000  # a million keys in 10 s
BATCH = 10_000


async def run(port: int, count: int) -> list[tuple[str, str]]:
    redis = Redis(port=port, decode_responses=True)
    try:
        stream = keys.event_stream("posts")
        for start in tqdm(range(0, count, BATCH), desc="filling", unit_scale=BATCH):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + BATCH, count)):
                    pipe.set(keys.user_profile(i), "x" * 100)
                    if i % 10 == 0:
                        pipe.xadd(stream, {"kind": "post_ready"})
                await pipe.execute()
        wall, cpu = time.perf_counter(), time.process_time()
        dropped = await purge(redis)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        kept = await redis.dbsize()
        rate = dropped / wall if wall else float("inf")
        return [
            ("keys dropped / kept", f"{dropped:,} / {kept:,} (the stream)"),
            ("wall", f"{wall:.2f} s"),
            ("client CPU", f"{cpu:.2f} s"),
            ("keys per second", f"{rate:,.0f}"),
            (f"target >= {TARGET_KEYS_PER_SECOND:,}/s",
             f"{'MET' if rate >= TARGET_KEYS_PER_SECOND else 'NOT MET'} "
             f"({rate / TARGET_KEYS_PER_SECOND:.2f}x)"),
        ]
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    args = parser.parse_args(argv)
    with private_redis_server("pictograph-purge-") as port:
        if port is None:
            print("redis-server is not installed", file=sys.stderr)
            return 2
        rows = asyncio.run(run(port, args.keys))
    print_table(f"Purging an untrusted Redis of {args.keys:,} cache keys", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

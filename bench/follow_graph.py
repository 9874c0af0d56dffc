"""How fast the one visibility authority answers, and what a followers page costs.

    python bench/follow_graph.py     # embedded default (SQLite + fakeredis)
    python bench/follow_graph.py --services   # PostgreSQL + Redis on 127.0.0.1

Prints medians and ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm

from bench._harness import (
    bench_app,
    latencies_ms,
    per_second,
    percentile,
    print_table,
    with_backend,
)
from pictograph.cache.graph import GraphCache
from pictograph.db import using_database
from pictograph.graph.reader import FollowGraph
from pictograph.models import Follow, FollowState, User
from pictograph.records import PostRecord, Relation
from pictograph.visibility import can_view_photo, photo_visible
from tests.support.counting import count_queries

PAGE = """query($u: String!) {
  user(username: $u) {
    followers(first: 100) {
      edges { node { username viewerFollowStatus followsViewer followerCount followingCount } }
    }
  }
}"""


async def main(followers: int, checks: int, requests: int) -> None:
    async with bench_app() as (app, client):
        resources = app.state.resources
        with using_database(resources.database):
            await resources.redis.flushdb()
            sign_up = ('mutation { signUp(input: {username: "viewer", password: "bench password"})'
                       " { token user { id } } }")
            result = await client.post("/graphql", json={"query": sign_up})
            token = result.json()["data"]["signUp"]["token"]
            viewer = await User.get(username="viewer")
            unusable = "!"  # no argon2 hash matches it: these users cannot log in
            owner = await User.create(username="owner", password_hash=unusable)
            members = [User(username=f"member{i:05d}", password_hash=unusable)
                       for i in range(followers)]
            for start in tqdm(range(0, followers, 500), desc="seeding followers", unit="batch"):
                await User.bulk_create(members[start:start + 500])
            rows = [Follow(follower_id=m.id, followee_id=owner.id, state=FollowState.ACCEPTED)
                    for m in members]
            rows.append(Follow(follower_id=viewer.id, followee_id=owner.id,
                               state=FollowState.ACCEPTED))
            await Follow.bulk_create(rows, batch_size=500)

            cache = GraphCache(resources.redis)
            await FollowGraph(cache).ensure_loaded([viewer.id, owner.id])

            photo = PostRecord(id=1, author_id=owner.id, caption="", status="READY",
                               failure_reason=None, created_at=datetime.now(UTC), variants={})

            async def one_check() -> None:
                # A fresh reader per check, as each request makes its own.
                assert await can_view_photo(FollowGraph(cache), viewer.id, photo)

            relation = Relation(following=True)

            async def pure_rule() -> None:
                assert photo_visible(viewer.id, photo, relation)

            print("timing can_view_photo ...")
            warm_rate = await per_second(one_check, checks)
            rule_rate = await per_second(pure_rule, checks)

            headers = {"Authorization": f"Bearer {token}"}

            async def page() -> None:
                response = await client.post("/graphql", json={"query": PAGE,
                                              "variables": {"u": "owner"}}, headers=headers)
                page_size = min(100, followers + 1)  # the viewer follows the owner too
                assert len(response.json()["data"]["user"]["followers"]["edges"]) == page_size

            async def cold_page() -> None:
                for key in await resources.redis.keys("user:*"):
                    await resources.redis.delete(key)
                await page()

            await page()
            await page()  # the owner's profile, first read by name, is cached from here on
            with count_queries() as warm_sql:
                await page()
            with count_queries() as cold_sql:
                await cold_page()
            print("timing followers pages ...")
            warm = await latencies_ms(page, requests)
            cold = await latencies_ms(cold_page, max(5, requests // 5))

    print_table(
        f"Follow graph ({'embedded' if resources.settings.embedded_redis else 'redis'}, "
        f"owner with {followers + 1} followers)",
        [
            ("can_view_photo, warm cache", f"{warm_rate:,.0f} checks/s (median of 5 rounds)"),
            ("the rule alone, in memory", f"{rule_rate:,.0f} checks/s"),
            ("ratio rule / warm check", f"{rule_rate / warm_rate:,.1f}x (the round trip)"),
            ("followers page of 100, warm", _latency(warm, len(warm_sql))),
            ("followers page of 100, cold", _latency(cold, len(cold_sql))),
            ("ratio cold / warm (p50)",
             f"{statistics.median(cold) / statistics.median(warm):.1f}x"),
        ],
    )


def _latency(samples: list[float], queries: int) -> str:
    return (f"p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 0.99):.1f} ms,"
            f" {queries} SQL queries")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--followers", type=int, default=2000)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database)")
    args = parser.parse_args()
    asyncio.run(with_backend(args.services, main(args.followers, args.checks, args.requests)))

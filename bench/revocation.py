"""What waiting for a replica (WAIT, cache/replicas.py) and for the epochs' copies to
lapse (the lease, cache/responses.py) cost a revocation.

    python bench/revocation.py                # embedded default: nothing to wait for
    python bench/revocation.py --services     # PostgreSQL + a lone Redis: nothing either
    PICTOGRAPH_REDIS_CLUSTER=true PICTOGRAPH_BENCH_REDIS_URL=redis://127.0.0.1:21301/0 \\
        python bench/revocation.py --services  # a cluster with replicas (it is flushed)

One viewer unfollows `--pairs` authors it has just followed, through the GraphQL API in
process, in `--rounds` rounds per setting, the settings interleaved ("auto": WAIT where a
master has a replica; "off": never) on the same app and Redis. Prints each setting's
unfollow p50/p99, what WAIT added, and the commands Redis ran per unfollow (INFO
commandstats, every master): the WAITs among them, one per master the unfollow fenced;
and, less noisy, the step WAIT is part of timed alone: the responses' fence of two users.
Then going private (`--pairs` / 8 times a round), with the epochs' lease and without it:
on a cluster it returns once every process's copies of its epoch lapsed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio.cluster import RedisCluster

from bench._harness import bench_app, percentile, print_table, verdict, with_backend
from pictograph.cache import responses as response_cache
from pictograph.cache.replicas import replica_wait
from pictograph.cache.responses import ResponseCache
from pictograph.db import using_database
from pictograph.models import User

# What a replica's acknowledgement may add to a revocation's median: on one host it is a
# round trip between two processes and a turn of the master's event loop.
ADDED_P50_TARGET_MS = 1.0
FOLLOW = "mutation($id: ID!) { %s(userId: $id) { status } }"
PRIVACY = "mutation { updateProfile(input: {isPrivate: %s}) { isPrivate } }"
SIGN_UP = ('mutation { signUp(input: {username: "viewer", password: "bench password"}) '
           "{ token user { id } } }")


async def commands(redis: Any) -> tuple[int, int]:
    """(every command, WAITs) Redis has run: summed over the masters of a cluster."""
    if isinstance(redis, RedisCluster):
        found = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        stats = list(found.values())
    else:
        try:
            stats = [await redis.info("commandstats")]
        except Exception:  # the embedded fakeredis keeps no statistics
            return 0, 0
    total = sum(int(value["calls"]) for each in stats for name, value in each.items()
                if name.startswith("cmdstat_"))
    waits = sum(int(each.get("cmdstat_wait", {}).get("calls", 0)) for each in stats)
    return total, waits


async def main(pairs: int, rounds: int) -> None:
    async with bench_app() as (app, client):
        resources = app.state.resources
        redis = resources.redis
        waiter = replica_wait(redis)
        with using_database(resources.database):
            signed = (await client.post("/graphql", json={"query": SIGN_UP})).json()
            token = signed["data"]["signUp"]["token"]
            headers = {"Authorization": f"Bearer {token}"}
            unusable = "!"  # no argon2 hash matches it: these users cannot log in
            authors = [await User.create(username=f"author{i:05d}", password_hash=unusable)
                       for i in range(pairs)]
        ids = [(await client.post("/graphql", headers=headers, json={
            "query": 'query($u: String!) { user(username: $u) { id } }',
            "variables": {"u": author.username}})).json()["data"]["user"]["id"]
            for author in authors]

        async def call(verb: str, target: str) -> None:
            answer = (await client.post("/graphql", headers=headers, json={
                "query": FOLLOW % verb, "variables": {"id": target}})).json()
            assert not answer.get("errors"), answer

        async def privacy(private: bool) -> None:
            answer = (await client.post("/graphql", headers=headers, json={
                "query": PRIVACY % str(private).lower()})).json()
            assert not answer.get("errors"), answer

        # Going private takes the viewer's posts from strangers' cached answers: on a
        # cluster it returns once every process's copies of its epoch lapsed (the lease,
        # cache/responses.py); without copies (a lease of 0) every hit reads the epochs.
        lease = response_cache.EPOCH_LEASE
        leases = {"lease": lease, "no lease": 0.0}
        private: dict[str, list[float]] = {name: [] for name in leases}
        samples: dict[str, list[float]] = {"auto": [], "off": []}
        fences: dict[str, list[float]] = {"auto": [], "off": []}
        spent: dict[str, list[int]] = {"auto": [0, 0], "off": [0, 0]}
        settings = ["auto", "off"] if waiter is not None else ["off"]
        responses = ResponseCache(redis)
        for number in range(rounds):
            for mode in settings if number % 2 == 0 else list(reversed(settings)):
                if waiter is not None:
                    waiter.mode = mode  # type: ignore[assignment]
                for author in authors:  # the step WAIT is part of: an unfollow's last fence
                    started = time.perf_counter()
                    fence = await responses.fence(follows=[author.id, authors[0].id])
                    fences[mode].append((time.perf_counter() - started) * 1000)
                    await responses.changed(fence=fence)
                for target in ids:
                    await call("follow", target)
                before = await commands(redis)
                for target in ids:
                    started = time.perf_counter()
                    await call("unfollow", target)
                    samples[mode].append((time.perf_counter() - started) * 1000)
                after = await commands(redis)
                spent[mode][0] += after[0] - before[0]
                spent[mode][1] += after[1] - before[1]
            for name in leases if number % 2 == 0 else list(reversed(leases)):
                response_cache.EPOCH_LEASE = leases[name]
                for _ in range(max(1, pairs // 8)):
                    started = time.perf_counter()
                    await privacy(True)
                    private[name].append((time.perf_counter() - started) * 1000)
                    await privacy(False)
            response_cache.EPOCH_LEASE = lease
        if waiter is not None:
            waiter.mode = "auto"

    unfollows = pairs * rounds
    rows = []
    for mode in settings:
        rows.append((f"unfollow, WAIT {mode}",
                     f"p50 {statistics.median(samples[mode]):.2f} ms, "
                     f"p99 {percentile(samples[mode], 0.99):.2f} ms, "
                     f"{spent[mode][0] / unfollows:.1f} Redis commands, "
                     f"{spent[mode][1] / unfollows:.2f} WAIT per unfollow"))
        rows.append((f"the responses' fence of two users, WAIT {mode}",
                     f"p50 {statistics.median(fences[mode]):.2f} ms, "
                     f"p99 {percentile(fences[mode], 0.99):.2f} ms"))
    if waiter is None:
        rows.append(("WAIT", "not measured here: the embedded fakeredis has no replicas"))
    elif spent["auto"][1] == 0:
        rows.append(("WAIT", "not sent: no master has a replica online (a lone Redis)"))
    else:
        added_p50 = statistics.median(samples["auto"]) - statistics.median(samples["off"])
        added_p99 = percentile(samples["auto"], 0.99) - percentile(samples["off"], 0.99)
        ratio = statistics.median(samples["auto"]) / statistics.median(samples["off"])
        fence_p50 = statistics.median(fences["auto"]) - statistics.median(fences["off"])
        fence_p99 = percentile(fences["auto"], 0.99) - percentile(fences["off"], 0.99)
        rows += [
            ("added by WAIT to an unfollow", f"p50 {added_p50:+.2f} ms ({ratio:.2f}x), "
                                             f"p99 {added_p99:+.2f} ms"),
            ("added by WAIT to the fence alone", f"p50 {fence_p50:+.2f} ms, "
                                                f"p99 {fence_p99:+.2f} ms"),
            (f"target: WAIT adds <= {ADDED_P50_TARGET_MS:.0f} ms to the fence at p50",
             verdict(fence_p50 <= ADDED_P50_TARGET_MS)),
            ("target: one WAIT per master an unfollow fenced (1 or 2)",
             verdict(1 <= spent["auto"][1] / unfollows <= 2 and spent["off"][1] == 0)),
        ]
    for name in leases:
        rows.append((f"going private, {name} ({leases[name] * 1000:.0f} ms)",
                     f"p50 {statistics.median(private[name]):.2f} ms, "
                     f"p99 {percentile(private[name], 0.99):.2f} ms"))
    added = [statistics.median(private["lease"]) - statistics.median(private["no lease"]),
             percentile(private["lease"], 0.99) - percentile(private["no lease"], 0.99)]
    rows.append(("added by the epochs' lease to going private",
                 f"p50 {added[0]:+.2f} ms, p99 {added[1]:+.2f} ms"
                 + ("" if isinstance(redis, RedisCluster) else " (one node: no copies)")))
    # By construction at most the lease (less the commit and moves after the fence),
    # where copies are held: a cluster. One node holds none, so it adds nothing there.
    bound = lease * 1000 if isinstance(redis, RedisCluster) else 0.0
    rows.append((f"target: the lease adds <= {bound:.0f} ms to going private at p50 "
                 "(+1 ms of noise)", verdict(added[0] <= bound + 1.0)))
    kind = ("a cluster" if isinstance(redis, RedisCluster)
            else "embedded" if waiter is None else "one Redis")
    print_table(f"Revocation cost of WAIT and of the epochs' lease ({kind}, {pairs} "
                f"unfollows x {rounds} rounds per setting, interleaved)", rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--services", action="store_true",
                        help="PostgreSQL and Redis on 127.0.0.1 (a throwaway database)")
    args = parser.parse_args()
    asyncio.run(with_backend(args.services, main(args.pairs, args.rounds)))

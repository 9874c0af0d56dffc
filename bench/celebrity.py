"""What a celebrity's actions cost Redis, at 1,000, 100,000 and 1,000,000 readers.

    python bench/celebrity.py                         # 1,000 / 100,000 / 1,000,000
    python bench/celebrity.py --readers 10,100        # a quick look

Starts a private redis-server (nothing else is touched; SLOWLOG logs every command
there) and the app on the embedded database against it. For each size, a celebrity
whose posts, profile and follower count R readers' cached responses show: each reader
holds a rendered response that recorded the celebrity's and its post's epochs, as a
feed or profile read leaves it (cache/responses.py). Then the project's own functions,
each with the worker's share of it:

- a post going READY: posts.lifecycle.finish_processing, then the fan-out worker's
  HomeFeed.push_to_home;
- a profile edit: accounts.actions.update_profile (a new bio);
- a deletion: posts.lifecycle.delete_post, then HomeFeed.forget_post;
- a follow: GraphChanges.follow by a new follower, then HomeFeed.merge_into_home;
- going private: GraphChanges.set_privacy (and back, untimed).

For each: the Redis commands Redis ran (INFO commandstats, script bodies' commands
included), Redis's CPU (INFO used_cpu_user + used_cpu_sys, with its idle ticking) and
the longest single command (SLOWLOG, slowlog-log-slower-than 0). Each reader holds two
answers: a profile of the celebrity with its follower count, and a feed that shows its
post. A sample of readers is looked up after each action: the profile must be refused
after every action, the feed after every one but the follow (a new follower changes
the celebrity's counts, not its posts). Targets (issue 22): each action's commands at
the largest size within 10x of the smallest, and no command over 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from tqdm import tqdm

from bench._harness import bench_app, print_table, private_redis_server
from pictograph.accounts.actions import update_profile
from pictograph.accounts.sessions import token_key
from pictograph.cache import keys
from pictograph.cache.responses import Recording, ResponseCache, stored_value
from pictograph.db import using_database
from pictograph.feed import policy
from pictograph.feed.policy import HomeFeed
from pictograph.graph.changes import GraphChanges
from pictograph.ids import new_id
from pictograph.models import Post, PostStatus, Upload, User
from pictograph.posts.lifecycle import delete_post, finish_processing
from pictograph.resources import Resources

SIZES = (1_000, 100_000, 1_000_000)
MAX_COMMAND_US = 1000  # no command may block Redis for more than 1 ms
MAX_RATIO = 10  # the largest size's commands within one order of magnitude of the smallest
SAMPLE = 3  # readers looked up after each action
FILL_BATCH = 20_000
UNUSABLE = "!"  # no argon2 hash matches it: these users cannot log in
# Bookkeeping commands of the bench's own, left out of the counts.
OWN = {"info", "config", "slowlog", "ping", "hello", "client", "select"}


# Per action: whether the readers' profile and feed answers must be refused after it.
REFUSES = {"post READY": (True, True), "profile edit": (True, True),
           "deletion": (True, True), "follow": (True, False), "going private": (True, True)}
ANSWERS = ("profile", "feed")


@dataclass
class Cost:
    commands: int
    cpu_ms: float
    longest_us: int
    longest_name: str
    wall_ms: float
    refused: tuple[bool, bool]  # every sampled reader's profile, feed answer refused after


class Meter:
    """Redis's own counts around one action, read from a connection of the bench's."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def start(self) -> float:
        await self.redis.config_set("slowlog-log-slower-than", 0)
        await self.redis.config_set("slowlog-max-len", 100_000)
        await self.redis.execute_command("CONFIG", "RESETSTAT")
        await self.redis.slowlog_reset()
        return await self._cpu()

    async def stop(self, cpu_before: float) -> tuple[int, float, int, str]:
        cpu = (await self._cpu() - cpu_before) * 1000
        stats = await self.redis.info("commandstats")
        commands = sum(int(stat["calls"]) for name, stat in stats.items()
                       if name.removeprefix("cmdstat_").split("|")[0] not in OWN)
        longest, name = 0, ""
        for entry in await self.redis.slowlog_get(100_000):
            command = entry["command"]
            command = command.decode() if isinstance(command, bytes) else command
            verb = command.split(" ", 1)[0].lower()
            if verb not in OWN and entry["duration"] > longest:
                longest, name = entry["duration"], verb.upper()
        return commands, cpu, longest, name

    async def _cpu(self) -> float:
        found = await self.redis.info("cpu")
        return float(found["used_cpu_user"]) + float(found["used_cpu_sys"])


class Crowd:
    """R readers of one celebrity, each holding two cached answers as a render leaves
    them: a profile with its counts (the celebrity's shown and follows epochs, its
    post's) and a feed (the celebrity's shown epoch, its post's)."""

    def __init__(self, resources: Resources, star: int, size: int) -> None:
        self.resources = resources
        self.redis = resources.redis
        self.cache = ResponseCache(resources.redis)
        self.star = star
        self.size = size
        # Reader ids of their own range per crowd: no user rows (no action reads them).
        self.first = 10**12 + star % 10**6 * 10**7
        self.sample = [self.first + i * max(1, size // SAMPLE) for i in range(SAMPLE)]

    async def fill(self, post_id: int) -> None:
        answers = await self._answers(post_id)
        for start in tqdm(range(0, self.size, FILL_BATCH), desc=f"{self.size:,} readers",
                          unit_scale=FILL_BATCH, leave=False):
            async with self.redis.pipeline(transaction=False) as pipe:
                for reader in range(self.first + start,
                                    self.first + min(start + FILL_BATCH, self.size)):
                    pipe.set(keys.response_version(reader), "v", ex=3600)
                    for digest, value in answers.items():
                        pipe.set(keys.response(reader, digest), value, ex=3600)
                await pipe.execute()

    async def restore_sample(self, post_id: int) -> None:
        """The sampled readers' answers, built again at the current epochs."""
        answers = await self._answers(post_id)
        expires = int(time.time()) + 3600
        for reader in self.sample:
            await self.redis.set(token_key(f"{reader}.bench"), f"{reader}:{expires}")
            for digest, value in answers.items():
                await self.redis.set(keys.response(reader, digest), value, ex=3600)
                assert (await self.cache.lookup(reader, token_key(f"{reader}.bench"),
                                                digest)).hit

    async def refused(self) -> tuple[bool, bool]:
        """Whether every sampled reader's profile, and feed, answer is refused."""
        found = []
        for digest in ANSWERS:
            hits = [(await ResponseCache(self.redis).lookup(
                reader, token_key(f"{reader}.bench"), digest)).hit for reader in self.sample]
            found.append(not any(hits))
        return found[0], found[1]

    async def _answers(self, post_id: int) -> dict[str, bytes]:
        shown = [keys.user_shown(self.star), keys.post_shown(post_id)]
        profile = b'{"data":{"user":{"username":"star","followerCount":1,"posts":[]}}}'
        feed = b'{"data":{"feed":{"edges":[{"node":{"author":{"username":"star"}}}]}}}'
        return {
            "profile": stored_value("v", "", await self._epochs(
                [*shown, keys.user_follows_shown(self.star)]), profile),
            "feed": stored_value("v", "", await self._epochs(shown), feed),
        }

    async def _epochs(self, wanted: list[str]) -> dict[str, str]:
        recording = Recording(0, 60)
        await recording.depend_now(self.redis, wanted)
        if recording.missing:
            await self.cache.make_epochs(recording.missing)
            recording = Recording(0, 60)
            await recording.depend_now(self.redis, wanted)
        assert recording.cacheable, recording
        return recording.epochs


async def processing_post(author: int) -> int:
    upload = await Upload.create(owner_id=author, content_type="image/jpeg", byte_size=1,
                                 object_key=f"uploads/{new_id()}",
                                 expires_at=datetime.now(UTC) + timedelta(hours=1))
    post = await Post.create(author_id=author, upload_id=upload.id,
                             status=PostStatus.PROCESSING)
    await Upload.filter(id=upload.id).update(post_id=post.id)
    return post.id


async def measure(meter: Meter, crowd: Crowd, post_id: int,
                  action: Callable[[], Awaitable[None]]) -> Cost:
    await crowd.restore_sample(post_id)
    cpu = await meter.start()
    started = time.perf_counter()
    await action()
    wall = (time.perf_counter() - started) * 1000
    commands, cpu_ms, longest, name = await meter.stop(cpu)
    return Cost(commands, cpu_ms, longest, name, wall, await crowd.refused())


async def one_size(resources: Resources, meter: Meter, size: int) -> dict[str, Cost]:
    star = await User.create(id=new_id(), username=f"star{size}", password_hash=UNUSABLE,
                             follower_count=size)
    feed = HomeFeed(resources)
    post_id = await processing_post(star.id)
    await finish_processing(resources, post_id, [], None)
    await feed.push_to_home(post_id, star.id)  # a celebrity from its first post on
    crowd = Crowd(resources, star.id, size)
    await crowd.fill(post_id)
    costs: dict[str, Cost] = {}

    new_post = await processing_post(star.id)

    async def ready() -> None:
        await finish_processing(resources, new_post, [], None)
        await feed.push_to_home(new_post, star.id)

    costs["post READY"] = await measure(meter, crowd, new_post, ready)

    async def edit() -> None:
        await update_profile(resources, star.id, None, f"bio at {time.time()}", None)

    costs["profile edit"] = await measure(meter, crowd, new_post, edit)

    async def delete() -> None:
        await delete_post(resources, star.id, new_post)
        await feed.forget_post(new_post, star.id)

    costs["deletion"] = await measure(meter, crowd, new_post, delete)
    fan = await User.create(id=new_id(), username=f"fan{size}", password_hash=UNUSABLE)

    async def follow() -> None:  # the readers' feeds stay: see REFUSES
        changes = GraphChanges(resources)
        await changes.follow(fan.id, star.id)
        await feed.merge_into_home(fan.id, star.id, None)

    costs["follow"] = await measure(meter, crowd, post_id, follow)

    async def go_private() -> None:
        await GraphChanges(resources).set_privacy(star.id, True)

    costs["going private"] = await measure(meter, crowd, post_id, go_private)
    await GraphChanges(resources).set_privacy(star.id, False)
    return costs


async def run(sizes: list[int]) -> int:
    async with bench_app() as (app, _):
        resources: Resources = app.state.resources
        with using_database(resources.database):
            # Every star is a celebrity, merged at read time from its first post on.
            resources.settings.celebrity_threshold = max(1, min(sizes) // 2)
            policy.CELEBRITY_GRACE = 0
            meter = Meter(Redis.from_url(os.environ["PICTOGRAPH_REDIS_URL"]))
            results = {size: await one_size(resources, meter, size) for size in sizes}
            await meter.redis.aclose()
    return report(sizes, results)


def report(sizes: list[int], results: dict[int, dict[str, Cost]]) -> int:
    rows: list[tuple[str, str]] = []
    met = True
    for action, expected in REFUSES.items():
        for size in sizes:
            cost = results[size][action]
            rows.append((f"{action}, {size:,} readers",
                         f"{cost.commands:,} Redis commands, Redis CPU {cost.cpu_ms:.1f} ms, "
                         f"longest {cost.longest_us} us ({cost.longest_name}), "
                         f"{cost.wall_ms:.0f} ms wall; {_fate(cost.refused)}"))
        smallest, largest = results[sizes[0]][action], results[sizes[-1]][action]
        ratio = largest.commands / max(1, smallest.commands)
        longest = max(results[size][action].longest_us for size in sizes)
        right = all(results[size][action].refused == expected for size in sizes)
        ok = ratio <= MAX_RATIO and longest <= MAX_COMMAND_US and right
        met = met and ok
        rows.append((f"  target: {action}", f"{'MET' if ok else 'NOT MET'}: commands "
                     f"{ratio:.2f}x from {sizes[0]:,} to {sizes[-1]:,} readers (<= "
                     f"{MAX_RATIO}x), longest {longest} us (<= {MAX_COMMAND_US} us), "
                     f"{_fate(expected)} {'as expected' if right else 'NOT AS EXPECTED'}"))
    rows.append(("all targets", "MET" if met else "NOT MET"))
    print_table("A celebrity's actions, by readers holding cached answers that show it",
                rows)
    return 0 if met else 1


def _fate(refused: tuple[bool, bool]) -> str:
    return ", ".join(f"{answer}s {'refused' if gone else 'kept'}"
                     for answer, gone in zip(ANSWERS, refused, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", default=",".join(str(s) for s in SIZES),
                        help="comma-separated reader counts, smallest first")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.readers.split(","))
    with private_redis_server("pictograph-celebrity-") as port:
        if port is None:
            print("redis-server is not installed", file=sys.stderr)
            return 2
        os.environ["PICTOGRAPH_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        os.environ.pop("PICTOGRAPH_DATABASE_URL", None)  # the embedded database
        return asyncio.run(run(sizes))

if __name__ == "__main__":
    raise SystemExit(main())

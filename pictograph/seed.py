"""`pictograph seed`: fills the configured database with a realistic network, fast.

What it makes, all decided up front in memory from one random seed, then written with
bulk inserts in one transaction (a failed seed leaves no rows behind):

- users, of whom a few are demo accounts (demo0..demo4) a person can log in as; the
  others have a password hash no password matches;
- a power-law follow graph: each user follows k accounts, k heavy-tailed, chosen by
  Zipf-like popularity, plus a few celebrities followed by a large fraction of users;
  follows of private accounts are sometimes still requests;
- READY posts over the last 30 days with time-sortable ids, each with an Upload row
  and THUMBNAIL and FULL variants of one of a handful of real processed photos.

Most seeded posts share their variant objects (one per sample photo); the demo
accounts' posts get objects of their own, because deleting a post deletes its objects
and the demo accounts are the only ones anybody can log in as.

Redis is left alone except for the feed keys (feed:*, user_feed:*, recent:*,
celebrities), which are deleted so no cache from an earlier run can lie.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
import random
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFilter
from tortoise.models import Model
from tortoise.transactions import in_transaction
from tqdm import tqdm

from pictograph.cache import keys
from pictograph.db import apply_migrations, using_database
from pictograph.ids import EPOCH_MS, NODE_BITS, NODES, PER_MILLISECOND, SEQUENCE_BITS, NoIdNode
from pictograph.images import process_image
from pictograph.media_types import extension
from pictograph.models import (
    Follow,
    FollowState,
    MediaVariant,
    Post,
    PostStatus,
    Upload,
    User,
)
from pictograph.passwords import Passwords
from pictograph.storage.signing import variant_key

if TYPE_CHECKING:
    from pictograph.resources import Resources
    from pictograph.settings import Settings

DEMO_PASSWORD = "correct horse battery"  # noqa: S105 - the demo accounts' published password
DEMO_ACCOUNTS = 5
UNUSABLE_PASSWORD_HASH = "!"  # noqa: S105 - not an argon2 hash: no password matches
BATCH = 1000
SAMPLE_PHOTOS = 16
POST_WINDOW = timedelta(days=30)
DAY_MS = 24 * 3600 * 1000
PRIVATE_SHARE = 0.05  # of ordinary accounts
PENDING_SHARE = 0.15  # of follows of a private account that are still requests
REDIS_PATTERNS = ("feed:*", "user_feed:*", "recent:*")

_FIRST = ("ada alan grace linus margaret ken dennis barbara edsger donald frances john "
          "katherine tim radia vint hedy claude annie sophie leo mia noah emma liam olivia "
          "lucas amara kai yuki ines omar zara felix nora ravi elena hugo lena").split()
_LAST = ("lovelace turing hopper torvalds hamilton thompson ritchie liskov dijkstra knuth "
         "allen backus johnson berners perlman cerf lamarr shannon easley wilson moreau "
         "tanaka garcia novak okafor lindqvist rossi kowalski fischer silva").split()
_BIOS = ("", "", "", "Film photography, mostly.", "Coffee, mountains, bad puns.",
         "Street photos from wherever I am.", "Dog person.", "Chasing golden hour.",
         "Amateur astronomer.", "Plants and light.", "Architecture nerd.",
         "Trying to post once a week.", "Sunsets are my whole personality.")
_SUBJECTS = ("morning light", "the old harbour", "my balcony garden", "a very good dog",
             "rain on the window", "last night's dinner", "the view from the ridge",
             "street corner", "city lights", "a quiet beach", "autumn leaves",
             "the market", "fog over the lake", "concrete and sky", "tiny mushrooms")
_MOODS = ("Finally.", "Again.", "Can't get enough of", "Found:", "Throwback to",
          "No filter:", "Sunday:", "Today:", "Somehow", "Obsessed with")
_TAGS = ("#nofilter", "#35mm", "#goldenhour", "#streetphotography", "#nature", "#travel",
         "#citylife", "#minimal", "", "", "")


class SeedRefused(Exception):
    """The database already has users and --force was not given, or sizes are wrong."""


def id_at(unix_ms: int, node: int = 0, sequence: int = 0) -> int:
    """The 53-bit id pictograph.ids would have minted at `unix_ms` (milliseconds since
    1970) on `node`: milliseconds since 2024, then the node, then the sequence."""
    return ((unix_ms - EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS)) | (
        (node % NODES) << SEQUENCE_BITS) | (sequence % PER_MILLISECOND)


class _PastIds:
    """Hands out unique ids for moments in the past. Every id of a seed comes from one
    of these, so ids are unique across tables as the app's are, and none is taken from
    the future (where the app's own generator will mint)."""

    def __init__(self, node: int, taken: Iterable[int] = ()) -> None:
        self.node = node
        self.taken = set(taken)
        self._next: dict[int, int] = {}

    def at(self, unix_ms: int) -> int:
        while True:
            sequence = self._next.get(unix_ms, 0)
            if sequence >= PER_MILLISECOND:
                unix_ms += 1
                continue
            self._next[unix_ms] = sequence + 1
            value = id_at(unix_ms, self.node, sequence)
            if value not in self.taken:
                return value


@dataclass
class _Person:
    id: int
    username: str
    display_name: str
    bio: str
    is_private: bool
    created_ms: int
    password_hash: str = UNUSABLE_PASSWORD_HASH
    follower_count: int = 0
    following_count: int = 0
    post_count: int = 0


@dataclass(frozen=True, slots=True)
class _Photo:
    """One processed sample photo: its variants, ready to point rows at."""

    variants: list[dict[str, Any]]  # size, width, height, content_type, byte_size, etag
    datas: list[bytes]
    original_size: int


@dataclass
class SeedReport:
    users: int
    follows: int
    requests: int
    posts: int
    celebrities: list[str]
    celebrity_followers: list[int]
    celebrity_threshold: int
    demo_accounts: list[str]
    redis_keys_deleted: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        demo = (f"{self.demo_accounts[0]}..{self.demo_accounts[-1]}"
                if len(self.demo_accounts) > 1 else self.demo_accounts[0])
        followers = (f"{min(self.celebrity_followers):,}-{max(self.celebrity_followers):,}"
                     " followers" if self.celebrity_followers else "none")
        return (
            f"seeded {self.users:,} users (log in as {demo}, password {DEMO_PASSWORD!r}), "
            f"{self.follows:,} follows + {self.requests:,} requests, {self.posts:,} READY "
            f"posts, {len(self.celebrities)} celebrities ({followers}; threshold "
            f"{self.celebrity_threshold:,}) in {self.seconds:.1f} s"
        )


async def run_seed(settings: Settings, **options: Any) -> SeedReport:
    """The CLI's entry: migrates if needed, opens the app's resources, seeds."""
    from pictograph.resources import open_resources

    if not settings.embedded_database:
        await apply_migrations(settings.resolved_database_url())  # embedded: opening does
    async with open_resources(settings) as resources:
        await resources.storage.ensure_bucket()
        return await seed(resources, **options)


async def seed(
    resources: Resources,
    *,
    users: int = 10_000,
    posts: int = 50_000,
    celebrities: int = 5,
    seed: int = 1,
    force: bool = False,
    progress: bool = True,
    photos: int = SAMPLE_PHOTOS,
) -> SeedReport:
    started = time.perf_counter()
    if users < DEMO_ACCOUNTS + celebrities + 2:
        raise SeedRefused(f"--users must be at least {DEMO_ACCOUNTS + celebrities + 2} "
                          f"(the {DEMO_ACCOUNTS} demo accounts, the celebrities and others)")
    if posts < 0 or celebrities < 0 or photos < 1:
        raise SeedRefused("--posts and --celebrities cannot be negative")
    rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
    threshold = resources.settings.celebrity_threshold
    with using_database(resources.database):
        taken: set[int] = set()
        existing_names: set[str] = set()
        if await User.exists():
            if not force:
                raise SeedRefused("the database already has users; pass --force to add "
                                  "more beside them")
            existing_names = set(await User.all().values_list("username", flat=True))
            for model in (User, Follow, Post, Upload):
                taken.update(await model.all().values_list("id", flat=True))

        now_ms = int(time.time() * 1000) - 2000
        # The node this process holds a lease on: no other process mints on it now, and
        # `taken` covers what earlier holders minted at the moments seeded here.
        node = resources.id_lease.node
        if node is None:
            raise NoIdNode()
        ids = _PastIds(node, taken)
        bar = _bars(progress)

        people = _people(rng, ids, users, celebrities, now_ms, existing_names)
        demo = people[:DEMO_ACCOUNTS]
        stars = people[DEMO_ACCOUNTS:DEMO_ACCOUNTS + celebrities]
        follows, warnings = _follow_graph(rng, ids, people, celebrities, threshold, now_ms,
                                          bar)
        passwords = Passwords(resources.settings)
        hashes = await asyncio.gather(*(passwords.hash(DEMO_PASSWORD) for _ in demo))
        for person, password_hash in zip(demo, hashes, strict=True):
            person.password_hash = password_hash

        samples = await asyncio.to_thread(_sample_photos, rng, photos, bar)
        planned = _plan_posts(rng, ids, people, celebrities, posts, photos, now_ms)
        objects = await _store_photos(resources, samples, planned, demo, bar)

        async with in_transaction():
            await _insert(User, (_user_row(p) for p in people), len(people), "users", bar)
            await _insert(Follow, (Follow(id=i, follower_id=a, followee_id=b, state=s,
                                          created_at=_at(ms))
                                   for i, a, b, s, ms in follows),
                          len(follows), "follows", bar)
            await _insert(Upload, (_upload_row(p, samples) for p in planned), len(planned),
                          "uploads", bar)
            await _insert(Post, (_post_row(p, rng) for p in planned), len(planned),
                          "posts", bar)
            await _insert(MediaVariant, _variant_rows(planned, samples, objects),
                          2 * len(planned), "media variants", bar)
        deleted = await _forget_feeds(resources)

    accepted = sum(1 for f in follows if f[3] == FollowState.ACCEPTED)
    return SeedReport(
        users=len(people),
        follows=accepted,
        requests=len(follows) - accepted,
        posts=len(planned),
        celebrities=[s.username for s in stars],
        celebrity_followers=[s.follower_count for s in stars],
        celebrity_threshold=threshold,
        demo_accounts=[d.username for d in demo],
        redis_keys_deleted=deleted,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


# Planning, in memory.


def _people(rng: random.Random, ids: _PastIds, count: int, celebrities: int, now_ms: int,
            existing: set[str]) -> list[_Person]:
    """Demo accounts first, then celebrities, then everyone else. Names get a suffix
    (.2, .3, ...) when an earlier --force run took them."""
    bases = [f"demo{i}" for i in range(DEMO_ACCOUNTS)]
    names = [(f"Demo {i}", "") for i in range(DEMO_ACCOUNTS)]
    for i in range(count - DEMO_ACCOUNTS):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        if i < celebrities:
            bases.append(f"{first}.{last}.{i}")
            names.append((f"{first.title()} {last.title()}", "Official account."))
        else:
            bases.append(f"{first}.{last[:6]}{i}")
            names.append((f"{first.title()} {last.title()}", rng.choice(_BIOS)))
    suffix, run = "", 1
    while existing and any(b + suffix in existing for b in bases):
        run += 1
        suffix = f".{run}"
    people = []
    for index, (base, (display, bio)) in enumerate(zip(bases, names, strict=True)):
        created = now_ms - rng.randint(31 * DAY_MS, 400 * DAY_MS)
        ordinary = index >= DEMO_ACCOUNTS + celebrities
        people.append(_Person(
            id=ids.at(created), username=base + suffix, display_name=display, bio=bio,
            is_private=ordinary and rng.random() < PRIVATE_SHARE, created_ms=created,
        ))
    return people


def _following_count(rng: random.Random, cap: int) -> int:
    """Heavy-tailed (Pareto, alpha 1.2): most follow a handful, a few follow hundreds."""
    return min(cap, int(3 / (1.0 - rng.random()) ** (1 / 1.2)))


def _follow_graph(
    rng: random.Random, ids: _PastIds, people: list[_Person], celebrities: int,
    threshold: int, now_ms: int, bar,
) -> tuple[list[tuple[int, int, int, FollowState, int]], list[str]]:
    """(id, follower id, followee id, state, ms) rows; counts set on `people`."""
    n = len(people)
    stars = range(DEMO_ACCOUNTS, DEMO_ACCOUNTS + celebrities)
    pool = [i for i in range(n) if i not in stars]  # followable by popularity
    ranks = list(range(1, len(pool) + 1))
    rng.shuffle(ranks)
    cumulative = list(accumulate(1.0 / r ** 0.9 for r in ranks))  # Zipf-like popularity
    total = cumulative[-1]
    edges: dict[int, set[int]] = {i: set() for i in range(n)}

    def pick(follower: int, how_many: int) -> None:
        chosen = edges[follower]
        want = len(chosen) + min(how_many, len(pool) - 1)
        for _ in range(8 * how_many + 50):
            if len(chosen) >= want:
                break
            target = pool[bisect_left(cumulative, rng.random() * total)]
            if target != follower:
                chosen.add(target)

    cap = max(1, min(1000, (n - 1) // 2))
    with bar(total=n, desc="follow graph", unit="user") as progress:
        for follower in range(n):
            if follower < DEMO_ACCOUNTS:
                pick(follower, min(cap, 80))  # a demo feed has plenty to show
            else:
                pick(follower, _following_count(rng, cap))
            progress.update(1)

    # Celebrities: followed by a large share of everyone (35-60%), and by enough to be
    # over the threshold when the network is big enough for that.
    warnings = []
    for star in stars:
        share = rng.uniform(0.35, 0.6)
        wanted = max(round(share * (n - 1)), threshold + max(1, threshold // 50))
        if wanted > n - 1:  # too few users to pass the threshold: say so below
            wanted = round(share * (n - 1))
        others = [i for i in range(n) if i != star]
        followers = set(rng.sample(others, wanted))
        followers.update(range(DEMO_ACCOUNTS))  # demo feeds show the read-time merge
        for follower in followers:
            edges[follower].add(star)
    edge_count = sum(len(targets) for targets in edges.values())
    rows = []
    for follower, targets in edges.items():
        a = people[follower]
        for followee in sorted(targets):
            b = people[followee]
            state = (FollowState.REQUESTED if b.is_private and rng.random() < PENDING_SHARE
                     else FollowState.ACCEPTED)
            start = max(a.created_ms, b.created_ms)
            ms = rng.randint(start, now_ms) if start < now_ms else now_ms
            rows.append((ids.at(ms), a.id, b.id, state, ms))
            if state == FollowState.ACCEPTED:
                a.following_count += 1
                b.follower_count += 1
    assert len(rows) == edge_count
    short = [people[star].follower_count for star in stars
             if people[star].follower_count < threshold]
    if short:
        warnings.append(
            f"{len(short)} of the celebrities have {min(short):,}-{max(short):,} followers, "
            f"below the celebrity threshold of {threshold:,}: {n:,} users are too few for it;"
            f" set PICTOGRAPH_CELEBRITY_THRESHOLD lower (when seeding and serving) to see "
            f"celebrity feeds"
        )
    return rows, warnings


@dataclass(frozen=True, slots=True)
class _PlannedPost:
    id: int
    upload_id: int
    author_index: int
    author_id: int
    ms: int
    photo: int


def _plan_posts(rng: random.Random, ids: _PastIds, people: list[_Person], celebrities: int,
                count: int, photos: int, now_ms: int) -> list[_PlannedPost]:
    """Authors by heavy-tailed activity; celebrities post a lot; times spread over the
    last 30 days."""
    activity = []
    for index in range(len(people)):
        weight = 1 / (1.0 - rng.random()) ** (1 / 1.5)
        if DEMO_ACCOUNTS <= index < DEMO_ACCOUNTS + celebrities:
            weight = max(weight, 5.0) * 4
        activity.append(weight)
    cumulative = list(accumulate(activity))
    window = int(POST_WINDOW.total_seconds() * 1000)
    planned = []
    for _ in range(count):
        author = bisect_left(cumulative, rng.random() * cumulative[-1])
        person = people[author]
        ms = now_ms - rng.randrange(min(window, now_ms - person.created_ms))
        upload_ms = max(person.created_ms, ms - rng.randint(1_000, 60_000))
        planned.append(_PlannedPost(id=ids.at(ms), upload_id=ids.at(upload_ms),
                                    author_index=author, author_id=person.id, ms=ms,
                                    photo=rng.randrange(photos)))
        person.post_count += 1
    return planned


def _sample_photos(rng: random.Random, count: int, bar) -> list[_Photo]:
    """A handful of small, distinct JPEGs, through the app's own processing."""
    photos = []
    with bar(total=count, desc="sample photos", unit="photo") as progress:
        for i in range(count):
            width, height = rng.choice([(640, 480), (480, 640), (600, 600)])
            top = _colour(i / count, 0.45, 0.95)
            bottom = _colour((i / count + 0.12) % 1, 0.8, 0.45)
            mask = Image.linear_gradient("L").resize((width, height))
            image = Image.composite(Image.new("RGB", (width, height), bottom),
                                    Image.new("RGB", (width, height), top), mask)
            draw = ImageDraw.Draw(image)
            for _ in range(rng.randint(3, 7)):
                x, y = rng.randrange(width), rng.randrange(height)
                r = rng.randint(20, min(width, height) // 3)
                colour = _colour(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.4, 1))
                shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
                shape((x - r, y - r, x + r, y + r), fill=colour)
            image = image.filter(ImageFilter.GaussianBlur(1.5))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=88)
            original = out.getvalue()
            variants = process_image(original)
            photos.append(_Photo(
                variants=[{
                    "size": v.size, "width": v.width, "height": v.height,
                    "content_type": v.content_type, "byte_size": len(v.data),
                    "etag": hashlib.sha256(v.data).hexdigest()[:32],
                } for v in variants],
                datas=[v.data for v in variants],
                original_size=len(original),
            ))
            progress.update(1)
    return photos


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)




async def _store_photos(
    resources: Resources, samples: list[_Photo], planned: list[_PlannedPost],
    demo: list[_Person], bar,
) -> dict[int, list[str]]:
    """Puts the variant objects into storage under the app's own keys. Returns each
    post's object keys (by post id) for posts with objects of their own (the demo
    accounts'), and under key -1 - photo the shared keys of each sample photo."""
    secret = resources.secret_key
    demo_ids = {d.id for d in demo}
    stored: dict[int, list[str]] = {}
    puts: list[tuple[str, bytes, str]] = []
    first_user: dict[int, int] = {}
    for post in planned:
        photo = samples[post.photo]
        if post.author_id in demo_ids:
            own = [variant_key(secret, post.id, v["size"], extension(v["content_type"]))
                   for v in photo.variants]
            stored[post.id] = own
            puts += [(k, d, v["content_type"])
                     for k, d, v in zip(own, photo.datas, photo.variants, strict=True)]
        else:
            first_user.setdefault(post.photo, post.id)
    for index, post_id in first_user.items():
        photo = samples[index]
        shared = [variant_key(secret, post_id, v["size"], extension(v["content_type"]))
                  for v in photo.variants]
        stored[-1 - index] = shared
        puts += [(k, d, v["content_type"])
                 for k, d, v in zip(shared, photo.datas, photo.variants, strict=True)]
    with bar(total=len(puts), desc="storing photos", unit="object") as progress:
        for start in range(0, len(puts), 16):
            chunk = puts[start:start + 16]
            await asyncio.gather(*(resources.storage.put(k, d, t) for k, d, t in chunk))
            progress.update(len(chunk))
    return stored


# Rows.


def _at(unix_ms: int) -> datetime:
    return datetime.fromtimestamp(unix_ms / 1000, UTC)


def _user_row(p: _Person) -> User:
    return User(id=p.id, username=p.username, display_name=p.display_name, bio=p.bio,
                is_private=p.is_private, password_hash=p.password_hash,
                follower_count=p.follower_count, following_count=p.following_count,
                post_count=p.post_count, graph_seq=0, created_at=_at(p.created_ms))


def _upload_row(p: _PlannedPost, samples: list[_Photo]) -> Upload:
    uploaded = _at(p.ms) - timedelta(seconds=30)
    return Upload(id=p.upload_id, owner_id=p.author_id, content_type="image/jpeg",
                  byte_size=samples[p.photo].original_size,
                  object_key=f"uploads/{p.author_id}/seed-{p.upload_id}",
                  expires_at=uploaded + timedelta(minutes=15), post_id=p.id,
                  created_at=uploaded)


def _post_row(p: _PlannedPost, rng: random.Random) -> Post:
    caption = f"{rng.choice(_MOODS)} {rng.choice(_SUBJECTS)} {rng.choice(_TAGS)}".strip()
    return Post(id=p.id, author_id=p.author_id, caption=caption, status=PostStatus.READY,
                upload_id=p.upload_id, created_at=_at(p.ms))


def _variant_rows(planned: list[_PlannedPost], samples: list[_Photo],
                  objects: dict[int, list[str]]) -> Iterator[MediaVariant]:
    for p in planned:
        index = p.photo
        object_keys = objects.get(p.id) or objects[-1 - index]
        for key, variant in zip(object_keys, samples[index].variants, strict=True):
            yield MediaVariant(post_id=p.id, object_key=key, **variant)


async def _insert(model: type[Model], rows: Iterable[Model], total: int, name: str,
                  bar) -> None:
    """Bulk inserts in batches, building model objects one batch at a time."""
    with bar(total=total, desc=name, unit="row") as progress:
        batch: list[Model] = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                await model.bulk_create(batch, batch_size=BATCH)
                progress.update(len(batch))
                batch = []
        if batch:
            await model.bulk_create(batch, batch_size=BATCH)
            progress.update(len(batch))


async def _forget_feeds(resources: Resources) -> int:
    """Deletes every cached feed, recent list and the celebrity set: they describe an
    earlier database and rebuild themselves on the next read."""
    redis = resources.redis
    deleted = 0
    for pattern in REDIS_PATTERNS:
        found: list[str] = []
        async for key in redis.scan_iter(match=pattern, count=1000):
            found.append(key)
            if len(found) >= 500:
                deleted += await redis.delete(*found)
                found = []
        if found:
            deleted += await redis.delete(*found)
    deleted += await redis.delete(keys.celebrities())
    return deleted


def _bars(enabled: bool):
    def bar(**options: Any) -> tqdm:
        return tqdm(disable=not enabled, leave=True, dynamic_ncols=True, **options)

    return bar

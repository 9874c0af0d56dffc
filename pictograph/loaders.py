"""Per-operation dataloaders, named by what they load and by what (UserByIdLoader): each
batches one kind of lookup through the cache, then SQL, and lives as long as the
operation it was made for (see Context)."""

from __future__ import annotations

from collections.abc import Sequence

from aiodataloader import DataLoader
from redis.asyncio import Redis

from pictograph.cache import keys
from pictograph.cache.jitter import jittered
from pictograph.cache.posts import PostCache
from pictograph.cache.responses import Recording
from pictograph.cache.users import USERNAME_TTL, ProfileCache
from pictograph.checkpoints import checkpoint
from pictograph.models import User
from pictograph.posts import store
from pictograph.posts.store import load_posts
from pictograph.records import PostRecord, UserRecord


class UserByIdLoader(DataLoader[int, UserRecord | None]):
    def __init__(self, profiles: ProfileCache, recording: Recording | None = None) -> None:
        super().__init__()
        self.profiles = profiles
        self.recording = recording

    async def batch_load_fn(self, user_ids: Sequence[int]) -> list[UserRecord | None]:
        found: dict[int, UserRecord | None] = {}
        versions: dict[int, str] = {}
        for user_id, (record, version) in zip(
            user_ids, await self.profiles.get(user_ids, self.recording), strict=True
        ):
            if record is None:
                versions[user_id] = version
            found[user_id] = record
        if versions:
            rows = [UserRecord.from_model(u) for u in await User.filter(id__in=list(versions))]
            await checkpoint("profiles.rows_read")
            await self.profiles.fill([(row, versions[row.id]) for row in rows])
            found.update({row.id: row for row in rows})
        return [found[user_id] for user_id in user_ids]


class UserIdByUsernameLoader(DataLoader[str, int | None]):
    """Usernames never change, so the name → id map caches without invalidation."""

    def __init__(self, profiles: ProfileCache, users: UserByIdLoader,
                 recording: Recording | None = None) -> None:
        super().__init__()
        self.profiles = profiles
        self.users = users
        self.recording = recording

    async def batch_load_fn(self, usernames: Sequence[str]) -> list[int | None]:
        found = dict(zip(usernames, await self.profiles.user_ids(usernames), strict=True))
        missing = [name for name, user_id in found.items() if user_id is None]
        if missing:
            redis: Redis = self.profiles.redis
            async with redis.pipeline(transaction=False) as pipe:
                for user in await User.filter(username__in=missing):
                    found[user.username] = user.id
                    # The whole row is at hand: this request's user loader takes it rather
                    # than query again. (Redis gets the profile on a later, id-keyed load,
                    # whose fill is version-checked; this read had no version to check.)
                    self.users.prime(user.id, UserRecord.from_model(user))
                    if self.recording is not None:
                        # Read before the viewer could register with the user (see
                        # cache/responses.py): this answer is not to be cached.
                        self.recording.cacheable = False
                    pipe.set(keys.username(user.username), user.id, ex=jittered(USERNAME_TTL))
                await pipe.execute()
        if self.recording is not None and None in found.values():
            self.recording.cacheable = False  # nothing would tell it the name was taken
        return [found[name] for name in usernames]


class PostByIdLoader(DataLoader[int, PostRecord | None]):
    """Posts by id. Only finished posts are cached: a PROCESSING post changes soon."""

    def __init__(self, posts: PostCache, recording: Recording | None = None) -> None:
        super().__init__()
        self.posts = posts
        self.recording = recording

    async def batch_load_fn(self, post_ids: Sequence[int]) -> list[PostRecord | None]:
        found: dict[int, PostRecord | None] = {}
        versions: dict[int, str] = {}
        for post_id, (record, version) in zip(
            post_ids, await self.posts.get(post_ids, self.recording), strict=True
        ):
            if record is None:
                versions[post_id] = version
            found[post_id] = record
        if versions:
            loaded = await load_posts(list(versions))
            await self.posts.fill(
                [(record, versions[record.id]) for record in loaded.values()
                 if store.cacheable(record)]
            )
            found.update(loaded)
        return [found.get(post_id) for post_id in post_ids]


class Loaders:
    """One operation's loaders. When the operation renders a response to cache, they
    register its viewer with each user and post before reading it (cache/responses.py)."""

    def __init__(self, redis: Redis, recording: Recording | None = None) -> None:
        profiles = ProfileCache(redis)
        self.users = UserByIdLoader(profiles, recording)
        self.user_ids_by_username = UserIdByUsernameLoader(profiles, self.users, recording)
        self.posts = PostByIdLoader(PostCache(redis), recording)

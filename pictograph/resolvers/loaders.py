"""Per-request dataloaders: each batches one kind of lookup through the cache, then SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiodataloader import DataLoader

from pictograph.cache import users as user_cache
from pictograph.models import User
from pictograph.records import UserRecord

if TYPE_CHECKING:
    from pictograph.resources import Resources


class UserLoader(DataLoader[int, UserRecord | None]):
    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self.resources = resources

    async def batch_load_fn(self, user_ids: Sequence[int]) -> list[UserRecord | None]:
        redis = self.resources.redis
        found = dict(zip(user_ids, await user_cache.get_profiles(redis, user_ids), strict=True))
        missing = [user_id for user_id, record in found.items() if record is None]
        if missing:
            rows = [UserRecord.from_model(u) for u in await User.filter(id__in=missing)]
            await user_cache.put_profiles(redis, rows)
            found.update({row.id: row for row in rows})
        return [found[user_id] for user_id in user_ids]


class UserIdByUsernameLoader(DataLoader[str, int | None]):
    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self.resources = resources

    async def batch_load_fn(self, usernames: Sequence[str]) -> list[int | None]:
        cached = await user_cache.get_user_ids(self.resources.redis, usernames)
        found = dict(zip(usernames, cached, strict=True))
        missing = [name for name, user_id in found.items() if user_id is None]
        if missing:
            rows = await User.filter(username__in=missing).values_list("username", "id")
            found.update(dict(rows))
        return [found[name] for name in usernames]


class Loaders:
    def __init__(self, resources: Resources) -> None:
        self.users = UserLoader(resources)
        self.user_ids_by_username = UserIdByUsernameLoader(resources)

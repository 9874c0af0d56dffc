"""Versions (cache/versioned.py) through its public entry, on the app's Redis: a miss
gets a version to fill at, a fill at it is read back, and a fence refuses every fill
until the change's bump ends it (issue 21's mutation run)."""

from __future__ import annotations

from pictograph.cache import keys
from pictograph.cache.versioned import PENDING, Versions, bump_and_drop, fence
from pictograph.resources import Resources

USER = 7001
OTHER = 7002


async def fill(versions: Versions, user_id: int, version: str, value: bytes) -> None:
    async with versions.redis.pipeline(transaction=False) as pipe:
        await versions.set_if_version(pipe, keys.user_profile(user_id),
                                      keys.user_version(user_id), version, value, 60)
        await pipe.execute()


async def read(versions: Versions, *user_ids: int) -> list[tuple[str | None, str]]:
    return await versions.read([keys.user_profile(i) for i in user_ids],
                               [keys.user_version(i) for i in user_ids])


async def test_a_miss_gets_a_version_and_a_fill_at_it_is_read_back(
    resources: Resources,
) -> None:
    versions = Versions(resources.redis)
    [(value, version)] = await read(versions, USER)
    assert value is None and version and not version.startswith(PENDING)
    assert await read(versions, USER) == [(None, version)]  # the same until a change
    await fill(versions, USER, version, b"profile")
    # A hit needs no version; the miss beside it gets its own.
    [hit, (missing, other_version)] = await read(versions, USER, OTHER)
    assert hit == ("profile", "")
    assert missing is None and other_version and other_version != version


async def test_a_fill_from_before_a_change_is_refused(resources: Resources) -> None:
    versions = Versions(resources.redis)
    [(_, before)] = await read(versions, USER)
    async with resources.redis.pipeline(transaction=False) as pipe:
        bump_and_drop(pipe, keys.user_profile(USER), keys.user_version(USER))
        await pipe.execute()
    await fill(versions, USER, before, b"stale")
    [(value, after)] = await read(versions, USER)
    assert value is None and after != before


async def test_nothing_fills_under_a_fence_until_the_changes_bump(
    resources: Resources,
) -> None:
    versions = Versions(resources.redis)
    [(_, before)] = await read(versions, USER)
    await fill(versions, USER, before, b"public")
    async with resources.redis.pipeline(transaction=False) as pipe:
        fence(pipe, keys.user_profile(USER), keys.user_version(USER))
        await pipe.execute()
    [(value, pending)] = await read(versions, USER)
    assert value is None and pending.startswith(PENDING)
    for version in (before, pending):  # neither a reader from before nor one under it
        await fill(versions, USER, version, b"stale")
        assert await read(versions, USER) == [(None, pending)]
    async with resources.redis.pipeline(transaction=False) as pipe:
        bump_and_drop(pipe, keys.user_profile(USER), keys.user_version(USER))
        await pipe.execute()
    [(_, after)] = await read(versions, USER)
    assert not after.startswith(PENDING)
    await fill(versions, USER, after, b"private")
    assert await read(versions, USER) == [("private", "")]

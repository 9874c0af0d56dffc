"""Reading the follow graph for one request: Redis first, the database when cold."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiodataloader import DataLoader

from pictograph.cache.graph import GraphCache
from pictograph.checkpoints import checkpoint
from pictograph.graph import store
from pictograph.records import NO_RELATION, GraphSnapshot, Relation


class _RelationLoader(DataLoader[int, Relation]):
    """Batches one viewer's relation lookups (a page of 100 users is one round trip)."""

    def __init__(self, graph: FollowGraph, viewer_id: int) -> None:
        super().__init__()
        self.graph = graph
        self.viewer_id = viewer_id

    async def batch_load_fn(self, other_ids: Sequence[int]) -> list[Relation]:
        found = await self.graph.relations(self.viewer_id, other_ids)
        return [found[other] for other in other_ids]


class FollowGraph:
    """Per-request reader. Graphs it had to load from the database are kept for the
    rest of the request, so a cold request reads each graph once."""

    def __init__(self, cache: GraphCache) -> None:
        self.cache = cache
        self._snapshots: dict[int, GraphSnapshot] = {}
        self._loading = asyncio.Lock()
        self._relation_loaders: dict[int, _RelationLoader] = {}
        # Every relation this request has read, so that a field resolved after its page
        # (a photo on a feed page) decides without another round trip or an await.
        self._read: dict[tuple[int, int], Relation] = {}

    async def relation(self, viewer_id: int | None, other_id: int) -> Relation:
        read = self.relation_read(viewer_id, other_id)
        if read is not None:
            return read
        assert viewer_id is not None
        loader = self._relation_loaders.get(viewer_id)
        if loader is None:
            loader = self._relation_loaders[viewer_id] = _RelationLoader(self, viewer_id)
        return await loader.load(other_id)

    def relation_read(self, viewer_id: int | None, other_id: int) -> Relation | None:
        """The relation as this request already read it, or None if it has not."""
        if viewer_id is None or viewer_id == other_id:
            return NO_RELATION
        return self._read.get((viewer_id, other_id))

    async def relations(self, viewer_id: int, other_ids: Sequence[int]) -> dict[int, Relation]:
        if not other_ids:
            return {}
        snapshot = self._snapshots.get(viewer_id)
        if snapshot is None:
            found = await self.cache.relations(viewer_id, other_ids)
            if found is None:
                snapshot = (await self._load([viewer_id]))[viewer_id]
        if snapshot is not None:
            found = {other: snapshot.relation_to(other) for other in other_ids}
        self._read.update(((viewer_id, other), relation) for other, relation in found.items())
        return found

    async def page(
        self, user_id: int, part: str, before: int | None, limit: int
    ) -> list[tuple[int, int]]:
        """(other user, follow id) pairs, newest first, older than `before`."""
        snapshot = self._snapshots.get(user_id)
        if snapshot is None:
            rows = await self.cache.page(user_id, part, before, limit)
            if rows is not None:
                return rows
            snapshot = (await self._load([user_id]))[user_id]
        pairs = getattr(snapshot, part).items()
        newest_first = sorted(pairs, key=lambda pair: pair[1], reverse=True)
        return [pair for pair in newest_first if before is None or pair[1] < before][:limit]

    async def database_snapshot(self, user_id: int) -> GraphSnapshot:
        """The user's whole graph as the database holds it, with its sequence number (read
        once per request, and offered to the cache like any cold read)."""
        return (await self._load([user_id]))[user_id]

    async def following_ids(self, user_id: int) -> list[int]:
        """Everyone the user follows (accepted), newest first."""
        return [other for other, _ in await self.page(user_id, "following", None, 1_000_000)]

    async def ensure_loaded(self, user_ids: Sequence[int]) -> None:
        """Loads, in one batch, the graphs of those users that Redis does not hold, so
        that a request needing several graphs pays one query for all of them."""
        wanted = [u for u in dict.fromkeys(user_ids) if u not in self._snapshots]
        if wanted:
            hits = await self.cache.loaded(wanted)
            cold = [user_id for user_id, hit in zip(wanted, hits, strict=True) if not hit]
            if cold:
                await self._load(cold)

    async def _load(self, user_ids: Sequence[int]) -> dict[int, GraphSnapshot]:
        """Reads the graphs from the database (once per request) and offers them to Redis."""
        async with self._loading:
            missing = [u for u in dict.fromkeys(user_ids) if u not in self._snapshots]
            if missing:
                epochs = await self.cache.epochs(missing)  # before the database: see fill
                snapshots = await store.load_snapshots(missing)
                await checkpoint("graph.snapshots_read")
                await self.cache.fill(list(snapshots.values()), epochs)
                self._snapshots.update(snapshots)
            return {user_id: self._snapshots[user_id] for user_id in user_ids}

"""Live feed updates over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import StrEnum

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from pictograph.context import Context
from pictograph.resolvers import live
from pictograph.schema.node import encode_global_id
from pictograph.schema.types import PostType


class FeedEventKind(StrEnum):
    POST_ADDED = "POST_ADDED"  # a post entered the viewer's feed
    POST_REMOVED = "POST_REMOVED"  # a post left it (deleted, or its author is no longer followed)


FeedEventKindEnum = strawberry.enum(FeedEventKind, name="FeedEventKind")


@strawberry.type
class FeedEvent:
    kind: FeedEventKindEnum  # type: ignore[valid-type]
    post_id: strawberry.ID
    post: PostType | None = strawberry.field(description="Set for POST_ADDED.")


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live changes to the viewer's home feed. Needs a token in connection_init."
    )
    async def feed_updates(self, info: Info[Context, None]) -> AsyncGenerator[FeedEvent, None]:
        # Whether the post's fields are read (the records judged are then handed to
        # them); fragments are taken to read it.
        with_post = not all(isinstance(selection, SelectedField) and selection.name != "post"
                            for field in info.selected_fields
                            for selection in field.selections)
        async for change in live.feed_updates(info.context, with_post):
            yield FeedEvent(
                kind=FeedEventKind(change.kind),
                post_id=encode_global_id("Post", change.post_id),
                post=PostType.from_record(change.post) if change.post else None,
            )

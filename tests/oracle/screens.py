"""What each user's feedUpdates subscription has put on their screen, as a client keeps
it: POST_ADDED puts a post there, POST_REMOVED takes it off. The oracle holds it to the
model once the workers are idle: nothing left on screen that has left the feed (deleted,
or its author no longer followed: the contract's POST_REMOVED), and every post that
became READY in a feed announced (POST_ADDED). Posts that enter a feed by a new follow
are not announced (the subscription does not backfill; the feed query does)."""

from __future__ import annotations

from typing import Any

from tests.oracle.model import User


class Screens:
    def __init__(self, users: int) -> None:
        self.shown: dict[User, set[str]] = {user: set() for user in range(users)}

    def heard(self, user: User, said: list[dict[str, Any]]) -> None:
        for event in said:
            if event["kind"] == "POST_ADDED":
                self.shown[user].add(event["postId"])
            else:
                self.shown[user].discard(event["postId"])

    def closed(self, user: User) -> None:
        """The subscription ended (logOut); a new one starts with nothing on screen."""
        self.shown[user] = set()

    def left_behind(self, user: User, feed: set[str]) -> set[str]:
        """Announced posts no longer in the feed that no POST_REMOVED took off."""
        return self.shown[user] - feed

    def unannounced(self, user: User, arrived: set[str]) -> set[str]:
        """Posts that arrived in the feed and were never announced."""
        return arrived - self.shown[user]

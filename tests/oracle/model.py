"""The oracle's own idea of who may see what: a few sets and the rules of the contract
(../shared/contract/schema.graphql), written from the contract and nothing else. It
imports nothing of Pictograph's, so a mistake in the project's visibility code cannot
hide here too.

The rules:
- everyone sees their own profile, posts and photos;
- a profile is hidden only from someone its owner blocked;
- posts of a public account are seen by everyone not blocked either way; of a private
  account, only by its accepted followers: what the owner does toward the viewer (a
  follow, a request) never opens anything;
- a post is seen by others only once READY (a PROCESSING or FAILED post only by its
  author), and a photo exists only then;
- photos are seen only by accepted followers (a block ends follows both ways);
- the home feed holds a user's own READY posts and those of the accounts they follow;
- a private account's followers ask first; going public accepts everyone who asked.
Two of the project's own (README, visibility.py), not in the contract's words:
- follower and following lists show as much as the posts, so they follow the posts' rule,
  and leave out anyone who blocked the reader;
- followsViewer is the owner's accepted follow of the viewer (never across a block).
"""

from __future__ import annotations

from dataclasses import dataclass, field

User = int  # an index into the example's users
Pair = tuple[User, User]  # (follower, followee) or (blocker, blocked)
READY, PROCESSING, FAILED = "READY", "PROCESSING", "FAILED"


@dataclass
class Model:
    users: int
    private: dict[User, bool] = field(default_factory=dict)
    follows: set[Pair] = field(default_factory=set)  # accepted
    requests: set[Pair] = field(default_factory=set)  # waiting for the followee
    blocks: set[Pair] = field(default_factory=set)
    posts: dict[str, User] = field(default_factory=dict)  # post id -> author
    post_status: dict[str, str] = field(default_factory=dict)  # READY where absent
    signed_in: dict[User, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for user in range(self.users):
            self.private.setdefault(user, False)
            self.signed_in.setdefault(user, True)

    # What each relation mutation answers ("NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT" or
    # the viewer's status afterwards), changing the sets as the contract says.

    def follow(self, a: User, b: User) -> str:
        refused = self._refused(a, b)
        if refused:
            return refused
        if (a, b) in self.blocks:
            return "FORBIDDEN"
        if (a, b) not in self.follows and (a, b) not in self.requests:
            (self.requests if self.private[b] else self.follows).add((a, b))
        return self.status(a, b)

    def unfollow(self, a: User, b: User) -> str:
        refused = self._refused(a, b)
        if refused:
            return refused
        self.follows.discard((a, b))
        self.requests.discard((a, b))
        return self.status(a, b)

    def approve(self, owner: User, asker: User) -> str:
        refused = self._refused(owner, asker)
        if refused:
            return refused
        if (asker, owner) in self.requests:
            self.requests.discard((asker, owner))
            self.follows.add((asker, owner))
        elif (asker, owner) not in self.follows:
            return "NOT_FOUND"
        return self.status(owner, asker)

    def reject(self, owner: User, asker: User) -> str:
        refused = self._refused(owner, asker)
        if refused:
            return refused
        self.requests.discard((asker, owner))
        return self.status(owner, asker)

    def remove_follower(self, owner: User, follower: User) -> str:
        refused = self._refused(owner, follower)
        if refused:
            return refused
        self.follows.discard((follower, owner))
        self.requests.discard((follower, owner))
        return self.status(owner, follower)

    def block(self, a: User, b: User) -> str:
        refused = self._refused(a, b)
        if refused:
            return refused
        for pair in ((a, b), (b, a)):
            self.follows.discard(pair)
            self.requests.discard(pair)
        self.blocks.add((a, b))
        return self.status(a, b)

    def unblock(self, a: User, b: User) -> str:
        refused = self._refused(a, b)
        if refused:
            return refused
        self.blocks.discard((a, b))
        return self.status(a, b)

    def set_private(self, user: User, private: bool) -> None:
        if self.private[user] and not private:
            asked = {pair for pair in self.requests if pair[1] == user}
            self.requests -= asked
            self.follows |= asked
        self.private[user] = private

    def _refused(self, a: User, b: User) -> str | None:
        if a == b:
            return "BAD_USER_INPUT"
        if (b, a) in self.blocks:
            return "NOT_FOUND"  # who blocked you does not exist for you
        return None

    def status(self, viewer: User, other: User) -> str:
        if viewer == other:
            return "SELF"
        if (viewer, other) in self.blocks or (other, viewer) in self.blocks:
            return "BLOCKED"
        if (viewer, other) in self.follows:
            return "FOLLOWING"
        if (viewer, other) in self.requests:
            return "REQUESTED"
        return "NONE"

    # Who sees what. `viewer` None is someone without a (valid) token.

    def profile_visible(self, viewer: User | None, owner: User) -> bool:
        return viewer is None or viewer == owner or (owner, viewer) not in self.blocks

    def posts_visible(self, viewer: User | None, owner: User) -> bool:
        if viewer == owner:
            return True
        if viewer is not None and ((viewer, owner) in self.blocks
                                   or (owner, viewer) in self.blocks):
            return False
        return not self.private[owner] or (viewer, owner) in self.follows

    def is_ready(self, post: str) -> bool:
        return self.post_status.get(post, READY) == READY

    def post_visible(self, viewer: User | None, post: str) -> bool:
        if post not in self.posts:
            return False
        author = self.posts[post]
        return viewer == author or (self.is_ready(post) and self.posts_visible(viewer, author))

    def failure_reason_visible(self, viewer: User | None, post: str) -> bool:
        return viewer == self.posts.get(post) and self.post_status.get(post) == FAILED

    def posts_shown(self, viewer: User | None, owner: User) -> set[str]:
        """What `user { posts }` lists: every post to its author, the READY ones to
        whoever may see the owner's posts (and profile)."""
        if not (self.profile_visible(viewer, owner) and self.posts_visible(viewer, owner)):
            return set()
        return {post for post, author in self.posts.items()
                if author == owner and self.post_visible(viewer, post)}

    def media_visible(self, viewer: User | None, post: str) -> bool:
        if post not in self.posts or viewer is None or not self.is_ready(post):
            return False
        author = self.posts[post]
        return viewer == author or (viewer, author) in self.follows

    def feed(self, viewer: User) -> set[str]:
        return {post for post, author in self.posts.items()
                if self.is_ready(post) and (author == viewer or (viewer, author) in self.follows)}

    def follows_viewer(self, viewer: User | None, owner: User) -> bool:
        return viewer is not None and viewer != owner and (owner, viewer) in self.follows

    def list_shown(self, viewer: User | None, owner: User, part: str) -> set[User]:
        """`followers` or `following` of the owner, as the viewer reads it."""
        if not (self.profile_visible(viewer, owner) and self.posts_visible(viewer, owner)):
            return set()
        listed = ({a for a, b in self.follows if b == owner} if part == "followers"
                  else {b for a, b in self.follows if a == owner})
        return {user for user in listed if self.profile_visible(viewer, user)}

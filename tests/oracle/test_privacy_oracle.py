"""The privacy oracle: random sequences of what users do, each step followed by every read
path held against a model of who may see what (tests/oracle/model.py), which imports
nothing of the project's. Two fan-out consumers per stream run beside the users, as
worker processes would, racing each other and the users' next steps.

Actions: follow, unfollow, approve, reject, removeFollower, block, unblock, going private
and public, posting (a photo that becomes READY, an unusable file that becomes FAILED, or
a photo left PROCESSING: the media worker is held until the next post's turn),
deleting, logOut and logIn; each mutation over HTTP or over the actor's open socket.
On the services backend Redis is the oracle's own, and two more steps snapshot it, and
kill it and start it again from its last snapshot (PICTOGRAPH_ORACLE_REDIS_FAULTS=0 leaves
them out, on the shared Redis).
After each step, for every viewer (each user, and nobody) and every post ever made in
the example:
- the home feed, user { posts }, post(id:) (with status and failureReason), node(id:) and
  their media fields, over HTTP;
- the same reads on the socket the viewer opened at the start (or at their last logIn);
- a /media URL for each (user, post), minted earlier or signed with the app's key;
- what the feedUpdates subscription on that socket said during the step: a post added
  only if the viewer could see it before or after the step (the subscription judges it
  when it arrives), a post removed only if they could ever see it.
Privacy is checked at once: nothing shown that is not allowed, whatever the workers have
done so far. Completeness then: within COMPLETE_WITHIN seconds every post the model puts
in a viewer's feed is there, once, newest first; and each subscription has said
POST_REMOVED for every post it announced that has left the feed, and POST_ADDED for every
post that became READY in it (tests/oracle/screens.py).

A new kind of step is one more @rule: it acts through World, tells the model whatever it
changes of who may see what (a Redis fault changes nothing), and the invariant then holds
every path to the model as after any other step.

Hypothesis shrinks a failure to a short sequence and prints it. Budget: the settings
below, PICTOGRAPH_ORACLE_EXAMPLES and PICTOGRAPH_ORACLE_STEPS; the README gives the longer
run's command.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from starlette.applications import Starlette
from tortoise.backends.base.executor import EXECUTOR_CACHE

from pictograph.app import create_app
from pictograph.db import using_database
from pictograph.schema.node import decode_id_of
from tests.conftest import REDIS_CLUSTER, Backend
from tests.oracle.model import FAILED, PROCESSING, READY, Model
from tests.oracle.screens import Screens
from tests.oracle.world import PHOTO, UNUSABLE, View, World
from tests.support.photos import process_media
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server import served

USERS = 3
EXAMPLES = int(os.environ.get("PICTOGRAPH_ORACLE_EXAMPLES", "15"))
STEPS = int(os.environ.get("PICTOGRAPH_ORACLE_STEPS", "20"))
REDIS_FAULTS = os.environ.get("PICTOGRAPH_ORACLE_REDIS_FAULTS", "1") != "0"
# Fan-out consumers per stream, and how long they may take to bring every feed up to date.
CONSUMERS = 2
COMPLETE_WITHIN = 2.0
MUTATION = "mutation($id: ID!) { %s(userId: $id) { status } }"
# GraphQL mutation -> the model's method of the same meaning.
RELATIONS = {
    "follow": "follow",
    "unfollow": "unfollow",
    "approveFollowRequest": "approve",
    "rejectFollowRequest": "reject",
    "removeFollower": "remove_follower",
    "block": "block",
    "unblock": "unblock",
}
ERRORS = {"NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT"}
member_of = st.integers(min_value=0, max_value=USERS - 1)
# (actor, other) of a relation change: two different users, so that few users make the
# same pairs meet again and again (a change to oneself is refused, and tested elsewhere).
pair_of = st.sampled_from([(a, b) for a in range(USERS) for b in range(USERS) if a != b])


def agrees(seen: View, expected: View) -> bool:
    """Every path as the model says; the feed may still lack what the fan-out workers
    have not written yet (check_complete waits for them), but shows nothing more."""
    feed_ok = seen.feed == expected.feed if expected.feed is None or seen.feed is None \
        else seen.feed <= expected.feed
    return feed_ok and replace(seen, feed=None) == replace(expected, feed=None)


def post_order(post: str) -> int:
    """Ids grow with time: newest first is highest first."""
    return decode_id_of(post, "Post") or 0


def codes(result: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in result.get("errors") or []]


class PrivacyOracle(RuleBasedStateMachine):
    world: ClassVar[World]
    loop: ClassVar[asyncio.AbstractEventLoop]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model(USERS)
        self.made: list[str] = []  # every post of the example, deleted ones too
        self.run(self.world.reset(USERS))
        self.feeds_before: dict[int, set[str]] = {user: set() for user in range(USERS)}
        self.ever_in_feed: dict[int, set[str]] = {user: set() for user in range(USERS)}
        self.screens = Screens(USERS)
        self.processing: dict[str, str] = {}  # post -> the status the media worker will give
        self.became_ready: set[str] = set()  # in this step

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Runs a step's coroutine on the app's event loop (hypothesis runs in a thread),
        with the app's ORM context, as a request or a worker has it."""
        async def bound() -> Any:
            with using_database(self.world.resources.database):
                return await coroutine

        return asyncio.run_coroutine_threadsafe(bound(), self.loop).result(300)

    def teardown(self) -> None:
        self.run(self.world.close())

    # The start: random steps seldom build a graph and posts deep enough for a
    # revocation to take anything away, so every example starts from one.

    @initialize(private=st.lists(st.booleans(), min_size=USERS, max_size=USERS),
                follows=st.sets(pair_of), approved=st.sets(pair_of))
    def a_network_that_has_posted(self, private: list[bool], follows: set[tuple[int, int]],
                                  approved: set[tuple[int, int]]) -> None:
        """Some accounts private, some follows (of a private account, some approved and
        the rest left as requests), then a READY post by everyone."""
        for user, is_private in enumerate(private):
            if is_private:
                self.set_privacy(user, True, on_socket=False)
        for pair in sorted(follows):
            self.change_a_relation("follow", pair, on_socket=False)
        for follower, followee in sorted(follows & approved):
            if private[followee]:
                self.change_a_relation("approveFollowRequest", (followee, follower),
                                       on_socket=False)
        for user in range(USERS):
            self.post(user, READY)

    # Actions.

    @rule(mutation=st.sampled_from(sorted(RELATIONS)), pair=pair_of, on_socket=st.booleans())
    def change_a_relation(self, mutation: str, pair: tuple[int, int], on_socket: bool) -> None:
        a, b = pair
        result = self.run(self.relation_change(mutation, a, b, on_socket))
        self.expect_relation_change(mutation, a, b, result)

    @rule(changes=st.lists(st.tuples(st.sampled_from(sorted(RELATIONS)), pair_of),
                           min_size=2, max_size=3))
    def change_relations_at_once(self, changes: list[tuple[str, tuple[int, int]]]) -> None:
        """Several changes sent together. Pairs that share a user would be decided by
        which commits first, so each user takes part in one change only."""
        chosen, busy = [], set()
        for mutation, (a, b) in changes:
            if {a, b} & busy:
                continue
            busy |= {a, b}
            chosen.append((mutation, a, b))

        async def together() -> list[dict[str, Any]]:
            return await asyncio.gather(*(self.relation_change(mutation, a, b, False)
                                          for mutation, a, b in chosen))

        for (mutation, a, b), result in zip(chosen, self.run(together()), strict=True):
            self.expect_relation_change(mutation, a, b, result)

    async def relation_change(self, mutation: str, a: int, b: int,
                              on_socket: bool) -> dict[str, Any]:
        actor, other = self.world.members[a], self.world.members[b]
        return await self.world.call(actor, MUTATION % mutation, {"id": other.id}, on_socket)

    def expect_relation_change(self, mutation: str, a: int, b: int,
                               result: dict[str, Any]) -> None:
        if not self.model.signed_in[a]:
            assert codes(result) == ["UNAUTHENTICATED"], result
            return
        expected = getattr(self.model, RELATIONS[mutation])(a, b)
        if expected in ERRORS:
            assert codes(result) == [expected], (mutation, result)
        else:
            assert not result.get("errors"), result
            assert result["data"][mutation]["status"] == expected, (mutation, result)

    @rule(a=member_of, private=st.booleans(), on_socket=st.booleans())
    def set_privacy(self, a: int, private: bool, on_socket: bool) -> None:
        result = self.run(self.world.call(
            self.world.members[a], "mutation($p: Boolean) { updateProfile(input: "
            "{isPrivate: $p}) { isPrivate } }", {"p": private}, on_socket))
        if not self.model.signed_in[a]:
            assert codes(result) == ["UNAUTHENTICATED"], result
            return
        assert result["data"] == {"updateProfile": {"isPrivate": private}}, result
        self.model.set_private(a, private)

    @precondition(lambda self: len(self.made) < 24)
    @rule(a=member_of, outcome=st.sampled_from([READY, READY, FAILED, PROCESSING]))
    def post(self, a: int, outcome: str) -> None:
        """A post whose photo the media worker makes READY or FAILED now; or, for
        PROCESSING, holds (it runs at the next post's turn, for every post waiting)."""
        if not self.model.signed_in[a]:
            return
        result = self.run(self.world.post(self.world.members[a],
                                          UNUSABLE if outcome == FAILED else PHOTO))
        assert not result.get("errors"), result
        post_id = result["data"]["createPost"]["id"]
        assert result["data"]["createPost"]["status"] == PROCESSING, result
        self.model.posts[post_id] = a
        self.model.post_status[post_id] = PROCESSING
        self.made.append(post_id)
        self.processing[post_id] = FAILED if outcome == FAILED else READY
        if outcome != PROCESSING:
            self.run(process_media(self.world.resources))  # READY ones fanned out by workers
            for post, status in self.processing.items():
                self.model.post_status[post] = status
                if status == READY and post in self.model.posts:
                    self.became_ready.add(post)
            self.processing.clear()

    @precondition(lambda self: bool(self.model.posts))
    @rule(data=st.data(), on_socket=st.booleans())
    def delete_a_post(self, data: st.DataObject, on_socket: bool) -> None:
        # In the order they were made: ids differ from one run to the next, so sorting
        # them would make the same draw pick another post when hypothesis replays it.
        post_id = data.draw(st.sampled_from([p for p in self.made if p in self.model.posts]))
        author = self.model.posts[post_id]
        if not self.model.signed_in[author]:
            return
        result = self.run(self.world.call(
            self.world.members[author], "mutation($id: ID!) { deletePost(id: $id) }",
            {"id": post_id}, on_socket))
        assert result["data"] == {"deletePost": True}, result
        del self.model.posts[post_id]

    @precondition(lambda self: any(self.model.signed_in.values()))
    @rule(data=st.data())
    def log_out(self, data: st.DataObject) -> None:
        a = data.draw(st.sampled_from([u for u, on in self.model.signed_in.items() if on]))
        result, closed_with = self.run(self.world.log_out(self.world.members[a]))
        assert result["data"] == {"logOut": True}, result
        assert closed_with == {4403}, closed_with
        self.model.signed_in[a] = False
        self.screens.closed(a)

    @precondition(lambda self: not all(self.model.signed_in.values()))
    @rule(data=st.data())
    def log_in(self, data: st.DataObject) -> None:
        a = data.draw(st.sampled_from([u for u, on in self.model.signed_in.items() if not on]))
        result = self.run(self.world.log_in(self.world.members[a]))
        assert not result.get("errors"), result
        self.model.signed_in[a] = True

    # Redis failing the way a real one does: it comes back from an older snapshot (a
    # crash with AOF everysec, a replica promoted before it caught up), taking with it
    # every fence, revoked mark and moved version written since. On the services backend
    # only (the embedded fakeredis lives and dies with the process).

    @precondition(lambda self: self.world.redis_server is not None)
    @rule()
    def snapshot_redis(self) -> None:
        self.world.redis_server.save()

    @precondition(lambda self: self.world.redis_server is not None)
    @rule()
    def restart_redis_from_its_snapshot(self) -> None:
        """The last snapshot may be this example's or an earlier one's, or none yet."""
        self.run(self.world.restart_redis())

    # The check.

    @invariant()
    def every_path_agrees_with_the_model(self) -> None:
        self.run(self.check())
        self.run(self.check_complete())
        self.run(self.check_live_complete())
        self.became_ready = set()
        self.feeds_before = {user: self.model.feed(user) for user in range(USERS)}
        for user, feed in self.feeds_before.items():
            self.ever_in_feed[user] |= feed

    async def check(self) -> None:
        """Privacy, at once: no path shows anything the model does not allow."""
        world, model = self.world, self.model
        for member in world.members:
            viewer = member.index if model.signed_in[member.index] else None
            expected = self.expected(viewer)
            seen = await world.view(member, self.made)
            assert agrees(seen, expected), self.difference(member.name, "HTTP", seen,
                                                           expected)
            if viewer is not None:
                on_socket = await world.view(member, self.made, on_socket=True)
                assert agrees(on_socket, expected), self.difference(member.name, "socket",
                                                                    on_socket, expected)
                await self.check_live_updates(member.index)
            for post in self.made:
                allowed = await world.media_allowed(world.url_for(member, post))
                assert allowed == model.media_visible(member.index, post), (
                    f"/media for {member.name}, post {post}: served={allowed}")
        anonymous = await world.view(None, self.made)
        assert anonymous == self.expected(None), self.difference(
            "nobody", "HTTP", anonymous, self.expected(None))

    async def check_complete(self) -> None:
        """Completeness, once the workers had their COMPLETE_WITHIN seconds: every post
        the model puts in a signed-in user's feed is there, once, newest first."""
        world, model = self.world, self.model
        async with asyncio.timeout(COMPLETE_WITHIN):
            await world.fan_out_idle()
        for member in world.members:
            if not model.signed_in[member.index]:
                continue
            want = sorted(model.feed(member.index), key=post_order, reverse=True)
            shown = await world.feed_order(member)
            assert shown == want, (
                f"{member.name}'s feed once the workers caught up:\n  shown {shown}\n"
                f"  model {want}\n  missing {sorted(set(want) - set(shown))}")

    async def check_live_complete(self) -> None:
        """Once the workers are idle, each subscription has taken off the screen what
        left the feed, and put on it what became READY in it."""
        for member in self.world.members:
            user = member.index
            if not self.model.signed_in[user]:
                continue
            await self.check_live_updates(user)
            feed = self.model.feed(user)
            left = self.screens.left_behind(user, feed)
            assert not left, f"{member.name} was never told these left the feed: {sorted(left)}"
            missing = self.screens.unannounced(user, self.became_ready & feed)
            assert not missing, f"{member.name} was never told of these new posts: " \
                f"{sorted(missing)}"

    async def check_live_updates(self, user: int) -> None:
        said = await self.world.live_updates(self.world.members[user])
        self.screens.heard(user, said)
        for event in said:
            post = event["postId"]
            if event["kind"] == "POST_ADDED":
                # Judged when it arrived: against the graph before this step or after it.
                allowed = post in self.feeds_before[user] | self.model.feed(user)
                assert allowed, f"user{user} was told of {post}, which is not theirs to see"
                if event["post"] and event["post"]["media"]:
                    assert self.model.media_visible(user, post) or post in \
                        self.feeds_before[user], event
            else:
                assert post in self.ever_in_feed[user] | self.feeds_before[user], (
                    f"user{user} was told {post} left, which they never could see")

    def expected(self, viewer: int | None) -> View:
        model, members = self.model, self.world.members
        return View(
            feed=None if viewer is None else frozenset(
                (post, model.media_visible(viewer, post)) for post in model.feed(viewer)),
            profiles=frozenset(m.name for m in members
                               if model.profile_visible(viewer, m.index)),
            posts=frozenset(
                (m.name, post, model.media_visible(viewer, post))
                for m in members for post in model.posts_shown(viewer, m.index)),
            post=frozenset((post, model.media_visible(viewer, post),
                            model.post_status.get(post, READY),
                            model.failure_reason_visible(viewer, post))
                           for post in self.made if model.post_visible(viewer, post)),
            node=frozenset((post, model.media_visible(viewer, post)) for post in self.made
                           if model.post_visible(viewer, post)),
        )

    def difference(self, who: str, path: str, seen: View, expected: View) -> str:
        lines = [f"{who} over {path} differs from the model:"]
        for name in ("feed", "profiles", "posts", "post", "node"):
            got, want = getattr(seen, name), getattr(expected, name)
            if got != want:
                extra = sorted(got - want) if got and want is not None else got
                missing = sorted(want - got) if want and got is not None else want
                lines.append(f"  {name}: shown but not allowed {extra}; "
                             f"allowed but not shown {missing}")
        lines.append(f"  model: follows={sorted(self.model.follows)} "
                     f"requests={sorted(self.model.requests)} blocks={sorted(self.model.blocks)}"
                     f" private={self.model.private} signed_in={self.model.signed_in}")
        return "\n".join(lines)


@pytest.fixture
async def oracle_redis(backend: Backend, tmp_path_factory: pytest.TempPathFactory
                       ) -> AsyncIterator[RedisServer | None]:
    """On the services backend, a Redis of the oracle's own, which its steps snapshot,
    kill and start again from the snapshot (never the shared one); none with
    PICTOGRAPH_ORACLE_REDIS_FAULTS=0, or on a cluster (the suite's own, which a restart
    from a snapshot would take from every other test: failover has its tests instead)."""
    if backend.name != "services" or not REDIS_FAULTS or REDIS_CLUSTER:
        yield None
        return
    with redis_server(tmp_path_factory.mktemp("oracle-redis")) as server:
        yield server


@pytest.fixture
async def oracle_app(backend: Backend, oracle_redis: RedisServer | None
                     ) -> AsyncIterator[Starlette]:
    """The backend's app (the response cache on, as by default) with room in the query
    limits for one read of every path (a document per viewer naming every post); the
    limits themselves are tested elsewhere."""
    EXECUTOR_CACHE.clear()
    update: dict[str, Any] = {
        "max_query_aliases": 200, "max_query_cost": 1_000_000, "max_query_tokens": 20_000,
        "max_query_depth": 12}
    if oracle_redis is not None:
        update["redis_url"] = oracle_redis.url
    application = create_app(backend.settings.model_copy(update=update))
    async with application.router.lifespan_context(application):
        application.state.oracle_redis = oracle_redis
        yield application


async def test_privacy_oracle(oracle_app: Starlette, caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=oracle_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pictograph.test",
                                 timeout=60) as client, served(oracle_app) as base:
        PrivacyOracle.world = World(oracle_app, client, base)
        PrivacyOracle.loop = asyncio.get_running_loop()
        budget = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                          suppress_health_check=list(HealthCheck))
        hits = oracle_app.state.resources.metrics.response_cache.labels("hit")
        hits_before = hits._value.get()
        with caplog.at_level(logging.WARNING):
            async with PrivacyOracle.world.fanning_out(CONSUMERS):
                await asyncio.to_thread(run_state_machine_as_test, PrivacyOracle,
                                        settings=budget)
    # Nothing the users did was the server's failure.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() for r in errors)
    # The reads over HTTP went through the response cache (on, as in production), and
    # some were answered from it: the oracle held it to the model too.
    assert hits._value.get() > hits_before

"""The simulated people of bench/soak.py, for locust (headless, started by the bench).

    locust -f bench/soak_locustfile.py --headless -u 20 -r 20 --run-time 60s

PICTOGRAPH_SOAK_PLAN names a JSON file the bench writes: the API base URLs, the shared
password, the wait between tasks, per account its username and users it does not follow
(id, username), and where to write the results when locust quits (after the last user
has stopped, so they count every request; locust's --csv is a snapshot up to a second old).
Each locust user logs in as its own account (so no two users change one account's
graph), on the base URLs in turn, then loops over a weighted mix of what the app does:
reading the home feed, fetching the thumbnails it got, following someone (and seeing
their profile's photos) and unfollowing them again, and posting a photo through the
upload ticket flow.

Every answer is checked: an HTTP status other than the one expected, a GraphQL
`errors` entry (any code, RATE_LIMITED included) or a payload that says the wrong thing
is a locust failure. The one refusal expected is the 403 for a thumbnail URL fetched
again after its author was unfollowed; a 200 there would be a leak and is a failure.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
from collections import deque
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from PIL import Image, ImageDraw

PLAN: dict[str, Any] = json.loads(Path(os.environ["PICTOGRAPH_SOAK_PLAN"]).read_text())
_next_account = itertools.count()
_environment: list[Environment] = []

LOG_IN = """mutation($username: String!, $password: String!) {
  logIn(input: {username: $username, password: $password}) { token }
}"""
# What the app's home screen asks for: a page of 20 with thumbnails.
FEED = """query($after: String) {
  feed(first: 20, after: $after) {
    edges { cursor node { id caption createdAt author { username displayName }
                          media(size: THUMBNAIL) { url width height expiresAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
FOLLOW = """mutation($id: ID!) { follow(userId: $id) { status user { username followerCount } } }"""
PROFILE = """query($username: String!) {
  user(username: $username) {
    username displayName followerCount viewerFollowStatus
    posts(first: 6) { edges { node { id media(size: THUMBNAIL) { url } } } }
  }
}"""
UNFOLLOW = """mutation($id: ID!) { unfollow(userId: $id) { status user { username } } }"""
CREATE_UPLOAD = """mutation($size: Int!) {
  createUpload(input: {contentType: "image/jpeg", byteSize: $size}) {
    uploadId url method headers { name value } }
}"""
CREATE_POST = """mutation($upload: ID!, $caption: String) {
  createPost(input: {uploadId: $upload, caption: $caption}) { id status }
}"""
MEDIA_OK = (200, 302, 304)  # the bytes, a redirect to storage, or "unchanged"
PENDING_MEDIA = 40  # thumbnails seen and not fetched yet, newest kept


def _photos(count: int = 6) -> list[bytes]:
    """Small, distinct, real JPEGs, so the media worker decodes and resizes each."""
    rng = random.Random(7)
    photos = []
    for _ in range(count):
        size = rng.choice([(640, 480), (480, 640), (600, 600)])
        image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.randrange(size[0]), rng.randrange(size[1])
            r = rng.randint(10, 120)
            draw.ellipse((x - r, y - r, x + r, y + r),
                         fill=tuple(rng.randrange(256) for _ in range(3)))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        photos.append(out.getvalue())
    return photos


PHOTOS = _photos()


class Person(FastHttpUser):
    host = PLAN["hosts"][0]  # each instance picks its own in __init__
    wait_time = between(*PLAN["wait"])

    def __init__(self, environment: Any) -> None:
        index = next(_next_account)
        accounts = PLAN["accounts"]
        if index >= len(accounts):
            raise RuntimeError(f"the plan has {len(accounts)} accounts; more users started")
        self.account: dict[str, Any] = accounts[index]
        # Users alternate between the API processes.
        self.host = PLAN["hosts"][index % len(PLAN["hosts"])]
        super().__init__(environment)
        self.token = ""
        self.cursor: str | None = None
        self.media: deque[tuple[str, str]] = deque(maxlen=PENDING_MEDIA)  # (url, author)
        self.posted = 0

    def on_start(self) -> None:
        data = self._graphql("logIn", LOG_IN, {"username": self.account["username"],
                                               "password": PLAN["password"]}, auth=False)
        if data is None:
            raise StopUser("could not log in")
        self.token = data["logIn"]["token"]

    # The mix.

    @task(10)
    def read_feed(self) -> None:
        self._read_feed("feed page 1", None)

    @task(3)
    def read_next_page(self) -> None:
        if self.cursor is None:
            self._read_feed("feed page 1", None)
        else:
            self._read_feed("feed next page", self.cursor)

    @task(12)
    def view_thumbnails(self) -> None:
        for _ in range(min(4, len(self.media))):
            url, _author = self.media.popleft()
            self._fetch_media("media", url, expect_refusal=False)

    @task(2)
    def follow_then_unfollow(self) -> None:
        """Follows someone new, looks at their profile's photos, unfollows: a photo URL
        minted while following must be refused at once (photos are for followers only,
        public account or not)."""
        target_id, target_name = random.choice(self.account["targets"])
        if self._graphql("follow", FOLLOW, {"id": target_id},
                         check=lambda d: _status_is(d["follow"], "FOLLOWING")) is None:
            return
        data = self._graphql("profile", PROFILE, {"username": target_name},
                             check=_profile_problem)
        urls = [e["node"]["media"]["url"] for e in data["user"]["posts"]["edges"]
                if e["node"]["media"]] if data else []
        for url in urls[:2]:
            self._fetch_media("media", url, expect_refusal=False)
        if self._graphql("unfollow", UNFOLLOW, {"id": target_id},
                         check=lambda d: _status_is(d["unfollow"], "NONE")) is None:
            return
        # Their thumbnails still queued from feed pages are refused from now on.
        self.media = deque(((url, author) for url, author in self.media
                            if author != target_name), maxlen=PENDING_MEDIA)
        if urls:
            self._fetch_media("media after unfollow (403 expected)", urls[0],
                              expect_refusal=True)

    @task(1)
    def post_photo(self) -> None:
        photo = random.choice(PHOTOS)
        data = self._graphql("createUpload", CREATE_UPLOAD, {"size": len(photo)})
        if data is None:
            return
        ticket = data["createUpload"]
        headers = {h["name"]: h["value"] for h in ticket["headers"]}
        with self.client.request(ticket["method"], ticket["url"], data=photo, headers=headers,
                                 name="upload PUT", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_text(response)[:200]}")
                return
            response.success()
        self.posted += 1
        self._graphql("createPost", CREATE_POST,
                      {"upload": ticket["uploadId"],
                       "caption": f"soak {self.account['username']} #{self.posted}"},
                      check=lambda d: _status_is(d["createPost"], "PROCESSING", "READY"))

    # Requests.

    def _read_feed(self, name: str, after: str | None) -> list[dict[str, Any]] | None:
        data = self._graphql(name, FEED, {"after": after}, check=_feed_problem)
        if data is None:
            return None
        feed = data["feed"]
        page = feed["pageInfo"]
        self.cursor = page["endCursor"] if page["hasNextPage"] else None
        for edge in feed["edges"]:
            node = edge["node"]
            if node["media"] is not None:  # null while a new post is PROCESSING
                self.media.append((node["media"]["url"], node["author"]["username"]))
        return feed["edges"]

    def _fetch_media(self, name: str, url: str, *, expect_refusal: bool) -> None:
        with self.client.get(url, name=name, allow_redirects=False,
                             catch_response=True) as response:
            status = response.status_code
            if expect_refusal:
                if status == 403:
                    response.success()
                else:
                    response.failure(f"HTTP {status} for a photo of someone just unfollowed")
            elif status in MEDIA_OK:
                response.success()
            else:
                response.failure(f"HTTP {status}")

    def _graphql(self, name: str, query: str, variables: dict[str, Any], *,
                 auth: bool = True, check: Any = None) -> dict[str, Any] | None:
        """The data, or None after marking the request failed (with the codes, so the
        failures table says what went wrong)."""
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        with self.client.post("/graphql", json={"query": query, "variables": variables},
                              headers=headers, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_text(response)[:200]}")
                return None
            try:
                body = response.json()
            except ValueError:
                response.failure(f"not JSON: {_text(response)[:200]}")
                return None
            if body.get("errors"):
                codes = sorted({(e.get("extensions") or {}).get("code", "no code")
                                for e in body["errors"]})
                response.failure(f"GraphQL {'/'.join(codes)}: {body['errors'][0].get('message')}")
                return None
            data = body.get("data")
            problem = "no data" if data is None else (check(data) if check else None)
            if problem:
                response.failure(problem)
                return None
            response.success()
            return data


def _status_is(payload: dict[str, Any], *wanted: str) -> str | None:
    return None if payload["status"] in wanted else (
        f"status {payload['status']}, expected {' or '.join(wanted)}")


def _profile_problem(data: dict[str, Any]) -> str | None:
    user = data["user"]
    if user is None:
        return "no such user"
    if user["viewerFollowStatus"] != "FOLLOWING":
        return f"viewerFollowStatus {user['viewerFollowStatus']} right after following"
    return None


def _feed_problem(data: dict[str, Any]) -> str | None:
    edges = data["feed"]["edges"]
    if len(edges) > 20:
        return f"{len(edges)} edges for first: 20"
    if any(e["node"]["author"] is None for e in edges):
        return "a post without its author"
    return None


def _text(response: Any) -> str:
    try:
        return response.text or ""
    except (UnicodeDecodeError, AttributeError):
        return "<binary>"


# The results, for bench/soak.py.

@events.init.add_listener
def _keep_environment(environment: Environment, **_: Any) -> None:
    _environment.append(environment)


@events.quit.add_listener
def _write_results(exit_code: int, **_: Any) -> None:
    runner = _environment[0].runner
    assert runner is not None
    stats = runner.stats

    def entry(e: Any) -> dict[str, Any]:
        return {"name": e.name, "method": e.method, "requests": e.num_requests,
                "failures": e.num_failures, "rps": e.total_rps,
                "p50": e.get_response_time_percentile(0.5),
                "p99": e.get_response_time_percentile(0.99),
                "max": e.max_response_time}

    Path(PLAN["results"]).write_text(json.dumps({
        "exit_code": exit_code,
        "total": entry(stats.total),
        "entries": [entry(e) for e in stats.entries.values()],
        "errors": [{"method": e.method, "name": e.name, "error": str(e.error),
                    "occurrences": e.occurrences} for e in stats.errors.values()],
        "exceptions": [{"count": row["count"], "message": row["msg"],
                        "traceback": row["traceback"]} for row in runner.exceptions.values()],
    }))

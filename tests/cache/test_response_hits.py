"""The rendered-response cache's hit, judged from one MGET (cache/responses.hit_body):
only the viewer's own live token, and a response built at the viewer's current version."""

from __future__ import annotations

import time

from pictograph.cache.responses import hit_body

LATER = str(int(time.time()) + 600).encode()
EARLIER = str(int(time.time()) - 1).encode()
NOW = int(time.time() * 1000)


def test_the_viewers_live_token_and_current_version_are_a_hit() -> None:
    assert hit_body(42, b"42:" + LATER, b"v1", b"v1\n{\"data\": 1}", NOW) == b'{"data": 1}'
    assert hit_body(42, b"42:" + LATER, b"v1", b"v1\n", NOW) == b""


def test_anything_else_goes_to_the_script() -> None:
    stored = b"v1\n{}"
    refused = [
        (b"7:" + LATER, b"v1", stored),  # another user's token
        (b"427:" + LATER, b"v1", stored),  # a prefix of the id is not the id
        (b"42:" + EARLIER, b"v1", stored),  # expired
        (b"revoked", b"v1", stored),
        (b"42", b"v1", stored),  # no expiry cached
        (None, b"v1", stored),  # the token is not cached
        (b"42:" + LATER, None, stored),  # no version: the script makes one
        (b"42:" + LATER, b"v2", stored),  # built at an older version
        (b"42:" + LATER, b"v", stored),  # a version that is a prefix of the stored one
        (b"42:" + LATER, b"!v1", b"!v1\n{}"),  # never stored under a fence, never served
        (b"42:" + LATER, b"v1", None),  # nothing stored
    ]
    for token, version, body in refused:
        assert hit_body(42, token, version, body, NOW) is None, (token, version, body)

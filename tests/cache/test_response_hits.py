"""The rendered-response cache's hit, judged from one MGET (cache/responses.judge): only
the viewer's own live token, a response built at the viewer's current version and, if it
read the home feed, the current feed version; then the epochs it recorded, each compared
with the current one."""

from __future__ import annotations

import time

from pictograph.cache.responses import judge, stored_value, unchanged

LATER = str(int(time.time()) + 600).encode()
EARLIER = str(int(time.time()) - 1).encode()
NOW = int(time.time() * 1000)


def test_the_viewers_live_token_and_current_version_are_a_hit() -> None:
    found = judge(42, b"42:" + LATER, b"v1", None, b"v1\n\n\n\n{\"data\": 1}", NOW)
    assert found is not None and (found.body, found.epoch_keys) == (b'{"data": 1}', b"")
    empty = judge(42, b"42:" + LATER, b"v1", b"f", b"v1\n\n\n\n", NOW)
    assert empty is not None and empty.body == b""


def test_a_response_carries_the_epochs_it_recorded_and_its_feed_version() -> None:
    stored = stored_value("v1", "f1", {"user:{7}:shown": "e7", "post:{9}:shown": "e9"},
                          b'{"data": {"a": "x\\ny"}}')
    found = judge(42, b"42:" + LATER, b"v1", b"f1", stored, NOW)
    assert found is not None
    assert found.keys() == (b"post:{9}:shown", b"user:{7}:shown")
    assert found.body == b'{"data": {"a": "x\\ny"}}'
    assert unchanged(found, [b"e9", b"e7"])
    for moved in ([b"e9", b"e8"], [b"e9", None], [b"e7", b"e9"], [b"e9"]):
        assert not unchanged(found, moved), moved
    # A response that read the feed is no hit once the feed moved, or its version is gone.
    assert judge(42, b"42:" + LATER, b"v1", b"f2", stored, NOW) is None
    assert judge(42, b"42:" + LATER, b"v1", None, stored, NOW) is None


def test_anything_else_goes_to_the_script() -> None:
    stored = b"v1\n\n\n\n{}"
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
        (b"42:" + LATER, b"!v1", b"!v1\n\n\n\n{}"),  # never stored under a fence
        (b"42:" + LATER, b"v1", None),  # nothing stored
        (b"42:" + LATER, b"v1", b"v1\n{}"),  # an older layout, without epochs
        (b"42:" + LATER, b"v1", b"v1\n\n\n{}"),  # ... or without their values
    ]
    for token, version, body in refused:
        assert judge(42, token, version, b"f", body, NOW) is None, (token, version, body)

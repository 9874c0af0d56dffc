"""PostgreSQL goes away under a running server (a proxy in between refuses, or
swallows, every connection: the real server is shared): /readyz says 503, requests
that need the database get a coded error quickly, and the server recovers on its own
when the database is back."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.faults.stack import UNAVAILABLE, Api, Stack, api_for, through, wait_until
from tests.support.graphql import PASSWORD
from tests.support.processes import serve
from tests.support.proxy import tcp_proxy

# Each needs the database whatever Redis holds: writes, and a token never seen.
NEEDS_DATABASE = [
    ("mutation($u: String!, $p: String!) { signUp(input: {username: $u, password: $p})"
     " { token } }", {"u": "newcomer", "p": PASSWORD}, False),
    ("mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p})"
     " { token } }", {"u": "regular", "p": PASSWORD}, False),
    ('mutation { createUpload(input: {contentType: "image/jpeg", byteSize: 1000})'
     " { uploadId } }", {}, True),
    ('mutation { updateProfile(input: {bio: "away"}) { bio } }', {}, True),
]


async def assert_unavailable(api: Api, token: str, requests: int = len(NEEDS_DATABASE)) -> None:
    readiness = await api.client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["checks"] == {"database": "unavailable", "redis": "ok",
                                          "storage": "ok"}
    for query, variables, signed_in in NEEDS_DATABASE[:requests]:
        body = await api.call(query, variables, token if signed_in else None)
        assert body["data"] is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR", error
        assert UNAVAILABLE in error["message"], error
    # Liveness is not readiness: the process itself is fine.
    assert (await api.client.get("/healthz")).status_code == 200


async def test_postgresql_away_gives_clear_errors_and_the_server_recovers(stack: Stack) -> None:
    with tcp_proxy("127.0.0.1", urlsplit(stack.database_url).port or 5432) as proxy:
        env = {**stack.env, "PICTOGRAPH_DATABASE_URL": through(proxy, stack.database_url)}
        with serve(env) as base:
            async with api_for(base) as api:
                token = await api.sign_up("regular")
                await api.post(token, "before the outage")

                # Stopped: connections are cut and new ones refused.
                proxy.refuse()
                await assert_unavailable(api, token)

                # Partitioned: connections hang instead; the connect timeout bounds them
                # (one request is enough: each waits out the timeout).
                proxy.go_silent()
                await assert_unavailable(api, token, requests=1)

                proxy.resume()

                async def ready() -> bool:
                    return (await api.client.get("/readyz")).status_code == 200

                await wait_until(ready, "the server is ready again without a restart")
                await api.sign_up("newcomer")
                post_id = await api.post(token, "after the outage")

                async def processed() -> bool:
                    return await stack.db.fetchval(
                        "SELECT count(*) FROM posts WHERE status = 'READY'") == 2

                # The in-process workers came back too.
                await wait_until(processed, "both posts are processed")
                assert post_id in await api.feed(token)

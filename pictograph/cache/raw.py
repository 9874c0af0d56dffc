"""Commands packed by hand, for the fan-out's thousands of script calls per post and
the response cache's hit.

A post to 10,000 followers is 10,000 calls of one script that differ only in the
follower's keys. Through redis-py's pipeline each call costs about 25 us of Python
(Script.__call__, argument encoding, packing, parsing the reply) and building its
arguments as strings as much again; packed here, the constant parts once per batch and
only the follower's keys per call (PerUser, about 2 us), Redis's own work per call
becomes what bounds the fan-out. A hit's MGET names some thirty keys, most of them the
same from one hit of a response to the next: packed once, they cost nothing per hit
(through execute_command, encoding them was a third of the hit's CPU).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError


def bulk(value: bytes | str | int) -> bytes:
    """One argument in the Redis protocol (RESP)."""
    if not isinstance(value, bytes):
        value = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(argument_count: int, *packed: bytes) -> bytes:
    """A command of `argument_count` arguments (the command's name among them), from
    arguments already packed (bulk), several to a part where that saves work."""
    return b"*%d\r\n%s" % (argument_count, b"".join(packed))


def evalsha_head(sha: str, key_count: int, arg_count: int) -> bytes:
    """What every call of the script starts with: the command and its key count."""
    return b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n%s" % (
        3 + key_count + arg_count, sha.encode(), bulk(key_count))


class PerUser:
    """One script call per user, packed with one %-format per user: the call's parts
    that do not depend on the user (`before`, `between`, `after`) packed once, each of
    the user's arguments spliced in from its template. The names come from keys.py (a
    marker stands where the id goes), so that module stays the one that names keys."""

    _MARK = "\x00"

    def __init__(self, head: bytes, user_keys: Sequence[Callable[[Any], str]],
                 between: bytes, user_args: Sequence[Callable[[Any], str]],
                 after: bytes) -> None:
        # Literal parts, each followed by one of the user's arguments (its prefix and
        # suffix around the id), the last by none.
        self._literals: list[bytes] = [head]
        self._arguments: list[tuple[bytes, bytes]] = []
        for i, name in enumerate([*user_keys, *user_args]):
            if i == len(user_keys):
                self._literals[-1] += between
            prefix, suffix = name(self._MARK).encode().split(self._MARK.encode())
            self._arguments.append((prefix, suffix))
            self._literals.append(b"")
        self._literals[-1] += after
        # Per length of a user id (ids of one length share every argument's length):
        # the template with the lengths written in, so a call splices in the id alone.
        self._by_length: dict[int, bytes] = {}

    def call(self, user_id: int) -> bytes:
        uid = b"%d" % user_id
        template = self._by_length.get(len(uid))
        if template is None:
            template = self._for_length(len(uid))
        return template % ((uid,) * len(self._arguments))

    def _for_length(self, n: int) -> bytes:
        parts = [self._literals[0].replace(b"%", b"%%")]
        for (prefix, suffix), literal in zip(self._arguments, self._literals[1:],
                                             strict=True):
            parts += [b"$%d\r\n" % (len(prefix) + n + len(suffix)),
                      prefix.replace(b"%", b"%%"), b"%s", suffix.replace(b"%", b"%%"),
                      b"\r\n", literal.replace(b"%", b"%%")]
        template = self._by_length[n] = b"".join(parts)
        return template


@asynccontextmanager
async def streaming(redis: Redis, source: str,
                    sha: str) -> AsyncIterator[Callable[[Sequence[bytes]], Awaitable[None]]]:
    """A `send` for batches of packed calls of the script `source` (its SHA1 `sha`),
    written one after another on one connection; every reply is read when the block
    ends. So Redis works through one batch while the caller prepares the next (the
    fan-out reads the next page of followers from the database meanwhile). Raises the
    first error any call answered, after reading all of them (the connection stays in
    step); if the block raises, the connection is dropped with its replies unread.
    The script is loaded first if Redis lacks it; one lost in between (a restart during
    the fan-out) fails the calls with NOSCRIPT, and the caller's retry finds it loaded."""
    if not (await redis.script_exists(sha))[0]:
        await redis.script_load(source)
    pool = redis.connection_pool
    connection = await pool.get_connection()
    sent = 0

    async def send(calls: Sequence[bytes]) -> None:
        nonlocal sent
        if calls:
            await connection.send_packed_command(calls)
            sent += len(calls)

    failed: ResponseError | None = None
    try:
        yield send
        # One deadline for the replies instead of the socket timeout on every one:
        # setting up a timeout costs more than reading a reply already buffered.
        async with asyncio.timeout(connection.socket_timeout):
            failed = await _read_replies(connection, sent)
    except BaseException:
        await connection.disconnect()  # replies may be left unread
        raise
    finally:
        await pool.release(connection)
    if failed is not None:
        raise failed


async def _read_replies(connection: Any, count: int) -> ResponseError | None:
    """Reads `count` replies; returns the first error among them (None: none failed).
    With hiredis, straight from its reader: redis-py's read_response costs some 4 us a
    reply, as much as packing the call, and a fan-out reads one per follower."""
    parser = getattr(connection, "_parser", None)
    reader = getattr(parser, "_reader", None)
    # Only where redis-py's own read_response would read from that parser: the
    # embedded fakeredis's connection answers from elsewhere.
    if (type(connection).read_response is not AbstractConnection.read_response
            or not isinstance(parser, _AsyncHiredisParser) or reader is None):
        failed: ResponseError | None = None
        for _ in range(count):
            try:
                await connection.read_response(timeout=math.inf)
            except ResponseError as error:
                failed = failed or error
        return failed
    failed = None
    gets = reader.gets
    while count:
        reply = gets()
        if reply is NOT_ENOUGH_DATA:
            await parser.read_from_socket()  # raises ConnectionError on a closed socket
            continue
        count -= 1
        if isinstance(reply, ResponseError):  # an error reply (hiredis's replyError)
            failed = failed or reply
        elif isinstance(reply, Exception):  # a protocol error: the connection is lost
            raise reply
    return failed


async def call_all(redis: Redis, source: str, sha: str, calls: Sequence[bytes]) -> None:
    """The packed calls in one write on one connection (see streaming)."""
    async with streaming(redis, source, sha) as send:
        await send(calls)


async def call(redis: Redis, packed: bytes) -> Any:
    """One packed command on a pooled connection, its reply left undecoded (bytes). A
    connection that fails is dropped and the command sent once more on a fresh one, as
    redis-py's own retry would: a server that restarted closed every pooled connection.
    A timeout is not retried (a stalled Redis would be waited for twice). Only for a
    command that may run twice (a read)."""
    pool = redis.connection_pool
    for attempt in (1, 2):
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed)
            return await connection.read_response(disable_decoding=True)
        except ResponseError:
            raise  # an error reply: the connection is in step
        except ConnectionError:
            await connection.disconnect()
            if attempt == 2:
                raise
        except BaseException:
            await connection.disconnect()  # the reply may be left unread
            raise
        finally:
            await pool.release(connection)
    raise AssertionError("unreachable")

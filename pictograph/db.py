"""Tortoise configuration and the database lifecycle: connect, migrate, close."""

from __future__ import annotations

from contextvars import Token
from typing import Any

from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext, _current_context
from tortoise.migrations.api.migrate import migrate

from pictograph.settings import Settings

MODEL_MODULES = ["pictograph.models"]
# A database that stops answering must fail requests, not hang them (asyncpg waits 60 s
# for a connection and for ever for an answer). The URL may set its own: ?timeout=
# (connecting, seconds) and ?command_timeout= (each statement).
CONNECT_TIMEOUT = 5
COMMAND_TIMEOUT = 30
_POSTGRES = ("postgres://", "postgresql://", "asyncpg://")
# Tortoise's SQLite engine with transactions that begin IMMEDIATE (see the module).
SQLITE_ENGINE = "pictograph.sqlite_engine"


def tortoise_config(database_url: str, *, serving: bool = False) -> dict[str, Any]:
    """`serving`: bound each statement too (not for migrations, which may run long)."""
    connection: str | dict[str, Any] = database_url
    if database_url.startswith(_POSTGRES):
        connection = expand_db_url(database_url)
        credentials = connection["credentials"]
        credentials.setdefault("timeout", CONNECT_TIMEOUT)
        if serving:
            credentials.setdefault("command_timeout", COMMAND_TIMEOUT)
    elif database_url.startswith("sqlite://"):
        connection = expand_db_url(database_url)
        connection["engine"] = SQLITE_ENGINE
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "pictograph.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def apply_migrations(database_url: str) -> None:
    """Brings the schema up to date; safe to run from several processes in turn."""
    async with TortoiseContext():
        await migrate(config=tortoise_config(database_url))


async def open_database(settings: Settings) -> TortoiseContext:
    url = settings.resolved_database_url()
    if settings.embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await apply_migrations(url)
    context = TortoiseContext()
    with using_database(context):  # init needs it current; requests bind it again
        await context.init(config=tortoise_config(url, serving=True))
    return context


class using_database:  # lower case: used as the function it was, `with using_database(...)`
    """Makes `context` the ORM's current one for this task.

    TortoiseContext's own `with` keeps one token on the instance, so two concurrent
    requests entering it would undo each other; the token here is local to the caller.
    A class rather than a generator: every request enters it, and an open WebSocket holds
    it for its whole life (a suspended generator and its frame, some 0.4 KiB, against
    this object's two slots).
    """

    __slots__ = ("_context", "_token")

    def __init__(self, context: TortoiseContext) -> None:
        self._context = context
        self._token: Token[TortoiseContext | None] | None = None

    def __enter__(self) -> TortoiseContext:
        self._token = _current_context.set(self._context)
        return self._context

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _current_context.reset(self._token)
            self._token = None

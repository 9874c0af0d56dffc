"""The `pictograph` command."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from pictograph.logs import configure_logging
from pictograph.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Pictograph: a photo-sharing network's GraphQL backend.", no_args_is_help=True
)


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        typer.echo(f"pictograph: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings)
    return settings


def _backends(settings: Settings) -> str:
    database = "SQLite in " + str(settings.data_dir.resolve()) if settings.embedded_database else (
        "PostgreSQL" if not settings.resolved_database_url().startswith("sqlite") else "SQLite"
    )
    redis = ("in-process fakeredis" if settings.embedded_redis else
             "Redis Cluster" if settings.redis_cluster else "Redis")
    storage = (
        f"local disk in {(settings.data_dir / 'objects').resolve()}"
        if settings.embedded_storage
        else f"S3 bucket {settings.s3_bucket!r}"
    )
    return f"database: {database}; cache: {redis}; storage: {storage}"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="Run background workers in-process.")
    ] = True,
    processes: Annotated[int, typer.Option(
        min=1, help="Server processes on the port (needs PostgreSQL and Redis).")] = 1,
) -> None:
    """Serve the GraphQL API (and, unless --no-workers, the background workers)."""
    from pictograph.serving import serve_here, serve_processes, served_base_url, unshareable

    settings = served_base_url(_settings(run_workers=workers), host, port)
    reasons = unshareable(settings) if processes > 1 else []
    if reasons:
        typer.echo(f"pictograph: --processes {processes} needs services that every process "
                   "can reach:\n  " + "\n  ".join(reasons), err=True)
        raise typer.Exit(2)
    where = f"http://{host}:{port}"
    typer.echo(f"Pictograph listening on {where}/graphql (GraphiQL in a browser)"
               + (f"; the web app on {where}/" if settings.web_app else ""))
    typer.echo(_backends(settings) + ("; workers in-process" if workers else "; no workers")
               + (f"; {processes} processes" if processes > 1 else "")
               + f"; URLs handed out on {settings.public_base_url}")
    if processes == 1:
        serve_here(settings, host, port)
    else:
        raise typer.Exit(serve_processes(settings, host, port, processes))


@app.command()
def worker() -> None:
    """Run the background workers only, as a process of their own."""
    from pictograph.heap import startup_heap_frozen
    from pictograph.metrics import metrics_listener
    from pictograph.resources import open_resources
    from pictograph.workers.runner import run_workers

    settings = _settings()
    typer.echo("Pictograph workers; " + _backends(settings))

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        async with (open_resources(settings) as resources,
                    metrics_listener(settings, resources.metrics),
                    run_workers(resources)):
            with startup_heap_frozen():
                await stopping.wait()

    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, create the storage bucket if missing and
    set its CORS rules to PICTOGRAPH_CORS_ORIGINS."""
    from pictograph.db import apply_migrations
    from pictograph.storage import open_storage

    settings = _settings()

    async def main() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await apply_migrations(settings.resolved_database_url())
        async with open_storage(settings) as storage:
            await storage.ensure_bucket()
            await storage.allow_origins(settings.cors_origin_list)

    asyncio.run(main())
    typer.echo("migrated; " + _backends(settings))


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Argument(help="Where to write the SDL.")] = Path(
        "schema.graphql"
    ),
) -> None:
    """Write the GraphQL schema (SDL) that frontends build against."""
    from pictograph.schema import build_schema

    output.write_text(build_schema().as_str() + "\n")
    typer.echo(f"wrote {output}")


@app.command()
def makemigrations(
    name: Annotated[str | None, typer.Option(help="A name for the migration.")] = None,
) -> None:
    """Write a migration for model changes into migrations/ (for developers)."""
    from pictograph.migrations_tool import make_migrations

    for path in asyncio.run(make_migrations(name)):
        typer.echo(f"created {path}")


@app.command()
def seed(
    users: Annotated[int, typer.Option(help="Accounts to create (5 are demo logins).")] = 10_000,
    posts: Annotated[int, typer.Option(help="READY photo posts, over the last 30 days.")] = 50_000,
    celebrities: Annotated[
        int, typer.Option(help="Accounts followed by a large share of users.")
    ] = 5,
    random_seed: Annotated[int, typer.Option("--seed", help="Seed of the random data.")] = 1,
    force: Annotated[
        bool, typer.Option(help="Add to a database that already has users.")
    ] = False,
) -> None:
    """Fill the database with a realistic network to try it out (demo0..demo4 can log in)."""
    from pictograph.seed import SeedRefused, run_seed

    settings = _settings()
    logging.getLogger("pictograph").setLevel(logging.WARNING)  # the bars say what happens
    try:
        report = asyncio.run(run_seed(settings, users=users, posts=posts,
                                      celebrities=celebrities, seed=random_seed, force=force))
    except SeedRefused as refused:
        typer.echo(f"pictograph: {refused}", err=True)
        raise typer.Exit(1) from None
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if settings.embedded_redis:
        typer.echo("(the embedded cache lives in each process: restart a running "
                   "`pictograph serve` so it forgets feeds it cached)", err=True)
    typer.echo(report.summary())

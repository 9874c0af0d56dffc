"""The app factory: one Starlette app, its routes, and the lifespan that owns connections."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pictograph.heap import startup_heap_frozen
from pictograph.http.graphql import GraphQLEndpoint
from pictograph.http.health import healthz, readyz
from pictograph.http.media import serve_media
from pictograph.http.middleware import RequestContextMiddleware
from pictograph.http.response_cache import ResponseCacheMiddleware
from pictograph.http.uploads import receive_upload
from pictograph.http.web import web_routes
from pictograph.metrics import metrics_listener
from pictograph.resources import open_resources
from pictograph.schema import build_schema
from pictograph.settings import Settings, load_settings
from pictograph.workers.runner import run_workers

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    graphql = GraphQLEndpoint(build_schema(settings), settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (open_resources(settings) as resources,
                    metrics_listener(settings, resources.metrics)):
            app.state.resources = resources
            if settings.run_workers:
                async with run_workers(resources):
                    with startup_heap_frozen():
                        yield
            else:
                with startup_heap_frozen():
                    yield

    return Starlette(
        routes=[
            # Every method reaches the view, so that a PUT is refused like any other
            # request it will not run: a 405 with a GraphQL error body.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/uploads/{upload_id:int}", receive_upload, methods=["PUT"]),
            Route("/media/{post_id:int}/{size:str}", serve_media, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *web_routes(settings),
        ],
        middleware=[
            # Outermost, so that every answer carries it, one from the response cache too.
            *_cors(settings),
            # First: a cached response is answered before anything else runs. Proxy
            # headers do not matter to it (no per-address limit applies to a cached read).
            Middleware(ResponseCacheMiddleware, settings=settings),
            *_proxy_headers(settings),
            Middleware(RequestContextMiddleware),
        ],
        lifespan=lifespan,
    )


def _cors(settings: Settings) -> list[Middleware]:
    """Pages on PICTOGRAPH_CORS_ORIGINS may call the API and PUT uploads (local disk);
    any other origin gets answers its page cannot read. No cookies are involved (tokens
    travel in Authorization), so credentials stay off."""
    if not settings.cors_origin_list:
        return []
    return [Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "PUT"],
        allow_headers=["authorization", "content-type", "x-request-id"],
        expose_headers=["retry-after", "x-request-id"],
        max_age=600,
    )]


def _proxy_headers(settings: Settings) -> list[Middleware]:
    """X-Forwarded-For and -Proto, believed only from the proxies the settings name.
    Here rather than in uvicorn (whose default believes 127.0.0.1, so any local client
    could choose its address), so every server and the in-process tests behave alike."""
    if not settings.trusted_proxy_list:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)]

"""The pages a browser loads: the reference web app at /, GraphiQL's page on GET /graphql,
and their files under /static, all from the package (pictograph/web/), never another host.

Each page carries a Content-Security-Policy that names only this server (and the media
and upload hosts the API itself hands out), so a script injected into a caption, or a
compromised CDN, has nothing to load and nowhere to send what it reads."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictograph.settings import Settings

WEB = Path(__file__).resolve().parent.parent / "web"


def web_routes(settings: Settings) -> list[BaseRoute]:
    """/ (the app, unless PICTOGRAPH_WEB_APP=false) and /static (its and GraphiQL's files)."""
    routes: list[BaseRoute] = []
    if settings.web_app:
        headers = page_headers(app_policy(settings))

        async def index(request: Request) -> Response:
            return FileResponse(WEB / "index.html", headers=headers)

        routes.append(Route("/", index, methods=["GET", "HEAD"]))
    if settings.web_app or settings.graphiql:
        routes.append(Mount("/static", _StaticHeaders(StaticFiles(directory=WEB / "static"))))
    return routes


def graphiql_page(settings: Settings) -> Response:
    return FileResponse(WEB / "graphiql.html",
                        headers=page_headers(graphiql_policy(settings)))


def page_headers(policy: str) -> dict[str, str]:
    return {
        "content-security-policy": policy,
        # Photo URLs are signed in their query string: no page of ours tells another
        # host which one it came from.
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "cache-control": "no-cache",
    }


def graphiql_policy(settings: Settings) -> str:
    # 'self' covers the page's own WebSocket (ws: on http, wss: on https) in CSP 3.
    # GraphiQL's dialogs (react-remove-scroll) write <style> elements: styles inline are
    # allowed here, scripts never, and with no other host to load from or send to, a
    # style has nothing to leak through.
    return _policy(connect=["'self'"], images=["'self'", "data:"],
                   styles=["'self'", "'unsafe-inline'"])


def app_policy(settings: Settings) -> str:
    # The API hands out absolute URLs: photos on PICTOGRAPH_PUBLIC_BASE_URL (redirected
    # to the bucket on S3) and upload tickets to the bucket itself.
    others = {_origin(settings.public_base_url)}
    if settings.s3_endpoint_url is not None:
        others.add(_origin(settings.s3_endpoint_url))
    hosts = sorted(others)
    sockets = sorted({host.replace("http", "ws", 1) for host in hosts})
    return _policy(connect=["'self'", *hosts, *sockets], images=["'self'", "blob:", *hosts])


def _policy(*, connect: list[str], images: list[str], styles: tuple[str, ...] | list[str] = (
        "'self'",)) -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        f"style-src {' '.join(styles)}",
        "font-src 'self' data:",
        f"img-src {' '.join(images)}",
        f"connect-src {' '.join(connect)}",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _StaticHeaders:
    """StaticFiles, with every answer revalidated (its ETag makes that cheap), so a new
    version of the app is never mixed with files a browser kept from the old one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["cache-control"] = "no-cache"
                headers["x-content-type-options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_headers)

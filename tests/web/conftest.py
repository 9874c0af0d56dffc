"""Headless Chromium (Debian's, at /usr/bin/chromium: Playwright's own download is out
of reach) for tests that use Pictograph as a person does, and where their screenshots go."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("PICTOGRAPH_TEST_CHROMIUM", "/usr/bin/chromium")
# Kept after the run (gitignored), for a person or CI to look at.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Conditions, not timings: a shared CI machine with two cores can be slow to get there.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        await browser.close()


class Tab:
    """A page that remembers every console error, failed script and request it made
    to a host other than this machine."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _request(self, request: object) -> None:
        url: str = request.url  # type: ignore[attr-defined]
        if url.startswith(("http:", "https:", "ws:", "wss:")):
            if urlsplit(url).hostname not in LOOPBACK:
                self.foreign.append(url)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        await self.page.screenshot(path=path, full_page=True)
        return path


async def offline_context(browser: Browser, **options: object) -> BrowserContext:
    """A context with no network beyond this machine: anything else is aborted."""
    context = await browser.new_context(**options)  # type: ignore[arg-type]

    async def loopback_only(route: object) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:  # type: ignore[attr-defined]
            await route.continue_()  # type: ignore[attr-defined]
        else:
            await route.abort()  # type: ignore[attr-defined]

    await context.route("**/*", loopback_only)
    return context

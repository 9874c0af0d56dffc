"""GraphiQL from the package: it renders with no network beyond this machine, under a
Content-Security-Policy that names no other host, and its headers pane reaches both
queries and subscriptions."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.processes import process_env, serve
from tests.web.api import post_photo, sign_up
from tests.web.conftest import Tab, offline_context


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(process_env(tmp_path_factory.mktemp("graphiql"))) as base:
        yield base


def test_graphiql_page_has_a_strict_policy_and_no_other_host(server: str) -> None:
    page = httpx.get(f"{server}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "http" not in policy.replace("https:", "")  # no host but this one
    assert "unpkg" not in page.text and "https://" not in page.text


async def set_editor(page: Page, area: str, text: str) -> None:
    editor = page.locator(f"{area} .CodeMirror >> visible=true").first
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    # CodeMirror closes brackets as one types; inserting the text bypasses that.
    await page.keyboard.insert_text(text)


async def run(page: Page, query: str) -> None:
    await set_editor(page, ".graphiql-query-editor", query)
    # GraphiQL reads an edit after a pause: until then it would run the operation named
    # before. Its saved tab state shows when it has.
    name = query.split()[1]
    await page.wait_for_function(
        """name => JSON.parse(localStorage.getItem('graphiql:tabState') || '{"tabs": []}')
                     .tabs.some(tab => tab.operationName === name)""", arg=name)
    await page.keyboard.press("Control+Enter")


async def test_graphiql_works_offline_with_headers_and_subscriptions(
    browser: Browser, server: str
) -> None:
    token = await sign_up(server, "grace")
    context = await offline_context(browser)
    tab = Tab(await context.new_page())
    page = tab.page
    await page.goto(f"{server}/graphql")
    await expect(page.locator(".graphiql-editor").first).to_be_visible()
    await tab.screenshot("graphiql")

    await page.get_by_role("button", name="Headers").click()
    await set_editor(page, ".graphiql-editor-tool", f'{{"Authorization": "Bearer {token}"}}')
    await run(page, "query Me { viewer { username } }")
    await expect(page.locator(".result-window")).to_contain_text('"username": "grace"')

    await run(page, "subscription Live { feedUpdates { kind post { caption } } }")
    await expect(page.get_by_role("button", name="Stop query")).to_be_visible()
    # The socket signed in with the headers pane's token: its own post arrives.
    await post_photo(server, token, "live in GraphiQL")
    await expect(page.locator(".result-window")).to_contain_text("live in GraphiQL",
                                                                  timeout=20_000)
    assert tab.errors == [] and tab.foreign == []
    await context.close()

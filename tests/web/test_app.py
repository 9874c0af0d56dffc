"""The reference web app in headless Chromium, as two people use it: Ada follows Bob,
Bob posts a photo, Ada sees it arrive live; Ada unfollows, the photo leaves her feed and
its URL is refused. On the embedded default (one process), and on PostgreSQL + Redis +
S3 (moto) behind `serve --processes 2`, where uploads go from the browser straight to
the bucket. Each page must load nothing from another host, log no console error, and
pass axe-core with no serious or critical violation."""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.support.graphql import PASSWORD
from tests.support.photos import jpeg
from tests.support.processes import on_services, output, process_env, serve_process
from tests.support.s3 import free_port
from tests.web import api
from tests.web.conftest import Tab, offline_context

# axe-core 4.10.3 from npm (sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce8
# 56dYtJYLkuIoYZvGfTs/PbZhideTcEg==), vendored for the test only.
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    name: str
    base: str


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve_process(process_env(tmp_path_factory.mktemp("web-embedded"))) as (base, _):
        yield Site("embedded", base)


@pytest.fixture(scope="module", params=["embedded", "services"])
async def site(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    if request.param == "embedded":
        yield request.getfixturevalue("embedded")
        return
    data_dir = tmp_path_factory.mktemp("web-services")
    port = free_port()
    endpoint = request.getfixturevalue("s3_endpoint")
    async with on_services(data_dir, "pictograph_web") as env:
        env = {**env, "PICTOGRAPH_S3_ENDPOINT_URL": endpoint,
               "PICTOGRAPH_S3_BUCKET": f"pictograph-web-{secrets.token_hex(4)}",
               # The page's origin PUTs uploads straight into the bucket.
               "PICTOGRAPH_CORS_ORIGINS": f"http://127.0.0.1:{port}"}
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pictograph", "migrate", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said, _ = await migrate.communicate()
        assert migrate.returncode == 0, said.decode()
        with serve_process(env, port=port, processes=2) as (base, process):
            try:
                yield Site("services", base)
            except BaseException:
                print(output(process)[-20_000:])
                raise


async def axe_serious(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, once its
    animations ended (a post that just arrived fades in: mid-fade, its text is paler
    than the page will show it, which axe would count against its contrast)."""
    await page.evaluate(
        "() => Promise.all(document.getAnimations().map(animation => animation.finished))")
    await page.evaluate(AXE)  # evaluated by the browser's debugger: the page's CSP allows none
    violations = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target).join(', ')})`)")
    return violations


async def sign_up(tab: Tab, base: str, username: str, name: str) -> None:
    page = tab.page
    await page.goto(base + "/")
    form = page.locator("form", has=page.get_by_role("heading", name="Create an account"))
    await form.get_by_label("Username").fill(username)
    await form.get_by_label("Display name (optional)").fill(name)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_text("Your feed is empty")).to_be_visible()
    await expect(page.locator("#live")).to_have_text("Live")


async def test_two_people_follow_post_live_and_unfollow(browser: Browser, site: Site) -> None:
    ada_context = await offline_context(browser, viewport=PHONE)  # usable at phone width
    bob_context = await offline_context(browser)
    ada, bob = Tab(await ada_context.new_page()), Tab(await bob_context.new_page())
    findings: dict[str, list[str]] = {}

    await ada.page.goto(site.base + "/")
    await expect(ada.page.get_by_role("heading", name="Log in")).to_be_visible()
    findings["log in"] = await axe_serious(ada.page)
    await ada.screenshot(f"{site.name}-1-log-in")

    await sign_up(ada, site.base, "ada", "Ada Lovelace")
    await sign_up(bob, site.base, "bob", "Bob")

    # Ada finds Bob by username and follows him.
    await ada.page.get_by_label("Find a person by username").fill("bob")
    await ada.page.get_by_role("button", name="Find").click()
    await ada.page.get_by_role("button", name="Follow", exact=True).click()
    await expect(ada.page.get_by_role("button", name="Unfollow")).to_be_visible()
    findings["profile"] = await axe_serious(ada.page)
    await ada.page.get_by_role("link", name="Home", exact=True).click()
    await expect(ada.page.get_by_text("Your feed is empty")).to_be_visible()

    # Bob's first try is not a photo: it fails, and he is told why.
    await bob.page.get_by_role("link", name="New photo").click()
    findings["new photo"] = await axe_serious(bob.page)
    await bob.page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo at all"})
    await bob.page.get_by_role("button", name="Post", exact=True).click()
    await expect(bob.page.get_by_role("alert").filter(has_text="could not be posted")
                 ).to_be_visible(timeout=30_000)
    await bob.screenshot(f"{site.name}-2-failed-photo")

    # Then a real one, with a progress bar, straight to the ticket's URL.
    await bob.page.get_by_label("Photo (JPEG, PNG or WebP)").set_input_files(
        {"name": "harbour.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1200, 900)})
    await bob.page.get_by_label("Caption").fill("Sunset over the harbour")
    await bob.page.get_by_role("button", name="Post", exact=True).click()
    await expect(bob.page.get_by_text("Posted.")).to_be_visible(timeout=30_000)
    await expect(bob.page.locator("#upload-progress")).to_have_js_property("value", 1)

    # Ada's feed shows it without a reload, from feedUpdates.
    card = ada.page.locator("article", has_text="Sunset over the harbour")
    await expect(card).to_be_visible(timeout=30_000)
    image = card.get_by_role("img", name="Photo by Bob: Sunset over the harbour")
    await expect(image).to_have_js_property("complete", True)
    assert await image.evaluate("img => img.naturalWidth") > 0
    url = await image.get_attribute("src")
    assert url is not None
    findings["feed"] = await axe_serious(ada.page)
    await ada.screenshot(f"{site.name}-3-feed-live")

    await bob.page.get_by_role("link", name="Profile", exact=True).click()
    await expect(bob.page.get_by_role("list", name="Photos by @bob").get_by_role("img")
                 ).to_have_count(1)
    await bob.screenshot(f"{site.name}-4-profile")
    await bob.page.get_by_role("link", name="Requests").click()
    await expect(bob.page.get_by_role("button", name="Remove follower @ada")).to_be_visible()
    findings["requests"] = await axe_serious(bob.page)
    await bob.page.get_by_role("link", name="Settings", exact=True).click()
    await expect(bob.page.get_by_label("Private account")).to_be_visible()
    findings["settings"] = await axe_serious(bob.page)

    # Ada unfollows: the photo leaves her feed, and its URL no longer serves her.
    await ada.page.get_by_role("link", name="Bob").first.click()
    await ada.page.get_by_role("button", name="Unfollow").click()
    await expect(ada.page.get_by_role("button", name="Follow", exact=True)).to_be_visible()
    await ada.page.get_by_role("link", name="Home", exact=True).click()
    await expect(ada.page.get_by_text("Your feed is empty")).to_be_visible()
    await expect(ada.page.get_by_text("Sunset over the harbour")).to_have_count(0)
    refused = await ada.page.request.get(url, max_redirects=0)
    assert refused.status in {403, 404}, refused.status

    # Logging out forgets everything the app kept.
    # The app reloads the page to drop what it kept in memory: wait for that load, or the
    # check below may run in the page being torn down.
    async with ada.page.expect_event("load"):
        await ada.page.get_by_role("button", name="Log out").click()
    await expect(ada.page.get_by_role("heading", name="Log in")).to_be_visible()
    assert await ada.page.evaluate("() => localStorage.length + sessionStorage.length") == 0

    assert {page: found for page, found in findings.items() if found} == {}
    assert (ada.errors, bob.errors, ada.foreign, bob.foreign) == ([], [], [], [])
    await ada_context.close()
    await bob_context.close()


async def test_the_feed_resyncs_what_it_missed_while_the_connection_was_down(
    browser: Browser, embedded: Site
) -> None:
    context = await offline_context(browser)
    sockets: list[WebSocketRoute] = []
    network_up = asyncio.Event()
    network_up.set()

    async def network(socket: WebSocketRoute) -> None:
        # Every socket the page opens passes through here: while the "network" is down,
        # one is closed as soon as it opens.
        if not network_up.is_set():
            await socket.close(code=1006)
            return
        socket.connect_to_server()
        sockets.append(socket)

    await context.route_web_socket(re.compile(r"/graphql$"), network)
    cleo = Tab(await context.new_page())
    await sign_up(cleo, embedded.base, "cleo", "Cleo")
    dan = await api.sign_up(embedded.base, "dan")
    dan_id = (await api.gql(embedded.base, '{ user(username: "dan") { id } }'))["user"]["id"]
    cleo_token = await cleo.page.evaluate(
        "() => JSON.parse(localStorage.getItem('pictograph.session')).token")
    await api.gql(embedded.base, "mutation($id: ID!) { follow(userId: $id) { status } }",
                  {"id": dan_id}, cleo_token)

    network_up.clear()
    for socket in sockets:
        await socket.close(code=1006)
    await expect(cleo.page.locator("#live")).to_have_text("Reconnecting…")
    # Dan posts while Cleo's connection is down: the live event never reaches her.
    post_id = await api.post_photo(embedded.base, dan, "Posted while you were away")
    await api.until_ready(embedded.base, dan, post_id)
    network_up.set()
    await expect(cleo.page.locator("#live")).to_have_text("Live", timeout=30_000)
    await expect(cleo.page.get_by_text("Posted while you were away")).to_be_visible()
    assert cleo.errors == [] and cleo.foreign == []
    await context.close()

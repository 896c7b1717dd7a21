from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import DEMO, shot

pytestmark = pytest.mark.slow
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"
UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
  .filter(el => el.getClientRects().length > 0)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
  .map(el => el.outerHTML)"""


@pytest.fixture(params=[375, 1280], ids=["375px", "1280px"])
def sized(request, browser, portal, auth_state):
    """A phone (375 px, touch) or a desktop window (1280 px)."""
    phone = request.param < 600
    context = browser.new_context(viewport={"width": request.param, "height": 844 if phone else 860},
                                  device_scale_factor=2 if phone else 1, is_mobile=phone, has_touch=phone,
                                  base_url=portal.url, storage_state=auth_state)
    tab = context.new_page()
    tab.width = request.param
    yield tab
    context.close()


def test_it_shows_sharing_details_copies_the_magnet_and_hands_out_the_torrent(logged_in):
    page = logged_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/models/{DEMO}/")
    magnet = page.get_by_label("Magnet link")
    expect(magnet).to_have_value(re.compile(r"^magnet:\?xt=urn:btih:[0-9a-f]{40}&xt=urn:btmh:1220[0-9a-f]{64}"))
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == magnet.input_value()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .torrent").click()
    assert download.value.suggested_filename == f"{DEMO}.torrent"
    shot(page, "detail")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("name, path", [("models", "/"), ("detail", f"/models/{DEMO}/"), ("chat", "/chat/"),
                                        ("add", "/models/add/"), ("login", "/login/")])
def test_every_page_fits_375_and_1280_pixels_with_every_control_named(sized, name, path, theme):
    page = sized
    page.emulate_media(color_scheme=theme)
    page.goto(path)
    expect(page.locator("main h1").first).to_be_visible()
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    shot(page, f"{name}-{page.width}px-{theme}")
    assert page.evaluate(FITS)
    assert page.evaluate(UNNAMED) == []


def test_it_pauses_and_resumes_seeding(logged_in):
    page = logged_in
    page.goto(f"/models/{DEMO}/")
    seed = page.get_by_label("Seed this model")
    seed.uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(seed).not_to_be_checked()
    seed.check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(seed).to_be_checked()

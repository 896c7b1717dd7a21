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


@pytest.fixture
def phone(browser, portal, auth_state):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=portal.url, storage_state=auth_state)
    tab = context.new_page()
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


@pytest.mark.parametrize("name, path", [("models", "/"), ("detail", f"/models/{DEMO}/"), ("chat", "/chat/"),
                                        ("add", "/models/add/")])
def test_it_fits_a_phone_screen_with_every_control_named(phone, name, path):
    page = phone
    page.goto(path)
    expect(page.locator("main h1").first).to_be_visible()
    shot(page, f"phone-{name}")
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

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.web.portal import PASSWORD
from tests.web.test_browser import DEMO, shot

pytestmark = pytest.mark.slow
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def phone(browser, portal):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=portal.url)
    tab = context.new_page()
    tab.goto("/login/")
    tab.get_by_label("Username").fill("admin")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/")
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


def test_it_fits_a_phone_screen(phone):
    page = phone
    expect(page.locator(f"#model-{DEMO}")).to_be_visible()
    assert page.evaluate(FITS)
    shot(page, "phone-models")
    page.goto(f"/models/{DEMO}/")
    assert page.evaluate(FITS)
    shot(page, "phone-detail")
    page.goto("/chat/")
    assert page.evaluate(FITS)
    shot(page, "phone-chat")
    page.goto("/models/add/")
    assert page.evaluate(FITS)
    shot(page, "phone-add")

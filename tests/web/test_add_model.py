from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.web.conftest import BROKEN_REPO, HUB_REPO
from tests.web.portal import TOKEN
from tests.web.test_browser import mark_page, row_of, same_document, shot

pytestmark = pytest.mark.slow
WATCH_BAR = """(id) => {
  window.__progress = [];
  const root = document.querySelector('.model[data-model-id="' + id + '"]');
  const bar = root.querySelector('[data-bar]');
  window.__progress.push(Number(bar.getAttribute('aria-valuenow')));
  new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
    .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
}"""


def submit_add_form(page, source: str) -> None:
    page.goto("/models/add/")
    page.get_by_label("Hugging Face URL or magnet link").fill(source)
    page.get_by_role("button", name="Add model").click()


def test_it_downloads_a_chosen_file_from_the_hub_with_live_progress(logged_in):
    page = logged_in
    submit_add_form(page, HUB_REPO)
    expect(page.get_by_role("group", name=re.compile("2 GGUF files"))).to_be_visible()
    expect(page.locator(".file-option")).to_have_text([re.compile(r"tinyllama-q8_0\.gguf\s+Q8_0\s+9\.4 MB"),
                                                       re.compile(r"tinyllama-q4_k_m\.gguf\s+Q4_K_M\s+6\.3 MB")])
    shot(page, "add-choose-file")
    page.get_by_label(re.compile("tinyllama-q8_0.gguf")).check()
    page.get_by_role("button", name="Download").click()
    page.wait_for_url(re.compile(r"/#model-"))
    model_id = page.url.split("#model-", 1)[1]
    mark_page(page)
    page.evaluate(WATCH_BAR, model_id)
    row = row_of(page, model_id)
    page.wait_for_function("() => window.__progress.some(v => v > 0 && v < 100)", timeout=30_000)
    shot(page, "models-downloading")
    expect(row.locator(".badge")).to_have_text("ready", timeout=60_000)
    progress = page.evaluate("window.__progress")
    assert same_document(page)
    assert progress[-1] == 100 and progress == sorted(progress)
    expect(row.get_by_role("button", name=re.compile("^Serve"))).to_be_visible()
    expect(row.locator(".model-sub")).to_contain_text("Q8_0")
    shot(page, "models-downloaded")


def test_it_says_when_a_repository_does_not_exist_and_adds_nothing(logged_in):
    page = logged_in
    models_before = page.locator("[data-model-id]").count()
    submit_add_form(page, "webtest/No-Such-Model-GGUF")
    expect(page.get_by_role("alert")).to_contain_text("webtest/No-Such-Model-GGUF")
    expect(page.get_by_label("Hugging Face URL or magnet link")).to_have_value("webtest/No-Such-Model-GGUF")
    shot(page, "add-error")
    page.goto("/")
    expect(page.locator("[data-model-id]")).to_have_count(models_before)


def test_it_shows_a_model_added_and_removed_elsewhere_without_reloading(logged_in):
    page = logged_in
    mark_page(page)
    api = {"Authorization": f"Token {TOKEN}"}
    created = page.request.post("/api/ai/download", headers=api,
                                data={"url": HUB_REPO, "fileName": "tinyllama-q4_k_m.gguf"}).json()["result"]
    row = row_of(page, created["id"])
    expect(row).to_contain_text("tinyllama-q4_k_m")
    page.request.delete(f"/api/ai/models/{created['id']}?deleteFiles=true", headers=api)
    expect(row).to_have_count(0)
    assert same_document(page)


def test_it_shows_a_failed_download_next_to_the_model_and_removes_it(logged_in):
    page = logged_in
    submit_add_form(page, BROKEN_REPO)
    page.wait_for_url(re.compile(r"/#model-"))
    row = row_of(page, page.url.split("#model-", 1)[1])
    expect(row.locator(".badge")).to_have_text("error", timeout=30_000)
    expect(row.locator(".alert-error")).to_contain_text("sha256")
    shot(page, "models-download-error")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("^Remove")).click()
    expect(row).to_have_count(0)


def test_it_explains_a_broken_magnet_link_and_adds_nothing(logged_in):
    page = logged_in
    models_before = page.locator("[data-model-id]").count()
    submit_add_form(page, "magnet:?dn=no-hash-here.gguf")
    expect(page.locator(".field-error")).to_have_text("The magnet link has no BitTorrent info-hash "
                                                      "(xt=urn:btih:… or xt=urn:btmh:1220…).")
    expect(page.get_by_label("Hugging Face URL or magnet link")).to_have_value("magnet:?dn=no-hash-here.gguf")
    page.goto("/")
    expect(page.locator("[data-model-id]")).to_have_count(models_before)


def test_it_adds_a_magnet_link_and_cancels_it(logged_in):
    page = logged_in
    magnet = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=Nobody-Seeds-This.Q4_0.gguf&xl=123456789"
    submit_add_form(page, magnet)
    page.wait_for_url(re.compile(r"/#model-"))
    row = row_of(page, page.url.split("#model-", 1)[1])
    expect(row).to_contain_text("Nobody-Seeds-This.Q4_0")
    expect(row).to_contain_text("Magnet link")
    expect(row.locator("[data-field=size]").first).to_have_text("123.5 MB")
    expect(row.locator("[data-field=peers]")).to_have_text("0")
    shot(page, "models-magnet")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("^Cancel")).click()
    expect(row).to_have_count(0)

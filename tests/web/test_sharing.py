from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.web.test_browser import DEMO, mark_page, row_of, same_document, shot
from torrents_app.session import P2PSession, SessionConfig

pytestmark = pytest.mark.slow
WATCH = """(id) => {
  window.__seen = {peers: [], uploadRate: []};
  const root = document.querySelector('.model[data-model-id="' + id + '"]');
  new MutationObserver(() => {
    window.__seen.peers.push(root.querySelector('[data-field=peers]').textContent);
    window.__seen.uploadRate.push(root.querySelector('[data-field=uploadRate]').textContent);
  }).observe(root, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def leecher():
    # A capped download rate keeps the transfer going long enough to be seen on the page.
    return P2PSession(SessionConfig(listen="127.0.0.1:0", dht=False, lsd=False, download_limit=25_000_000))


def test_it_shows_a_peer_downloading_from_the_portal_live(logged_in, portal, leecher, tmp_path):
    page = logged_in
    row = row_of(page, DEMO)
    expect(row.locator("[data-field=shareRatio]")).to_have_text("0.00")
    mark_page(page)
    page.evaluate(WATCH, DEMO)
    torrent = page.request.get(f"/models/{DEMO}/torrent/").body()
    leecher.add("demo", save_path=tmp_path, torrent=torrent)
    host, port = portal.env["P2P_LISTEN"].rsplit(":", 1)
    leecher.connect_peer("demo", host, int(port))
    page.wait_for_function("() => window.__seen.peers.includes('1')", timeout=30_000)
    page.wait_for_function("() => window.__seen.uploadRate.some(r => r !== '0 B/s')", timeout=30_000)
    shot(page, "models-sharing")
    expect(row.locator("[data-field=shareRatio]")).to_have_text(re.compile(r"^(0\.9[5-9]|1\.\d\d)$"), timeout=60_000)
    assert same_document(page)
    # The seed counts bytes as it sends them; the leecher's own count trails by what is still in
    # socket buffers and unverified pieces, so wait for it to finish rather than race it.
    wait_for(lambda: leecher.is_complete("demo"), what="the leecher's copy")

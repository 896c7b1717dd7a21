from __future__ import annotations

import hashlib

from huggingface_hub import HfApi, hf_hub_download

from tests.models_app.hub.conftest import DEMO_REPO, SMALL_FILE


def test_it_serves_the_tree_api_with_lfs_hashes_like_the_hub(hub, demo_gguf):
    files = {f.path: f for f in HfApi(endpoint=hub.url).list_repo_tree(DEMO_REPO, revision="main")}
    assert files[demo_gguf.name].size == demo_gguf.stat().st_size
    assert files[demo_gguf.name].lfs.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert files["README.md"].lfs is None


def test_it_lets_plain_hf_hub_download_fetch_a_large_file_through_its_cdn(hub, tmp_path):
    path = hf_hub_download(DEMO_REPO, SMALL_FILE, local_dir=tmp_path, endpoint=hub.url)
    expected = hub.repos[DEMO_REPO].files[SMALL_FILE]
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == expected.sha256
    assert hub.bytes_served == expected.size

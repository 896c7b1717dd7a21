from __future__ import annotations

import hashlib

import shutil
from collections import namedtuple

import pytest

from models_app.hub.tasks import download_task
from models_app.models import AIModel, ModelFile
from tests.models_app.hub.conftest import (
    CORRUPT_REPO,
    DEMO_ID,
    DEMO_REPO,
    GATED_REPO,
    MEDIUM_FILE,
    MEDIUM_ID,
    MEDIUM_REPO,
    NO_GGUF_REPO,
    PRIVATE_REPO,
    SMALL_FILE,
    SPLIT_REPO,
)
from torrents_app.models import Torrent
from tests.factories import copy_update

DEMO_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
pytestmark = pytest.mark.django_db


def post(api, **body):
    return api.post("/api/ai/download", body, format="json")


def test_it_queues_a_repo_url_at_once_and_lists_the_other_quantizations(api, hub, demo_gguf):
    response = post(api, url=f"{hub.url}/{DEMO_REPO}")
    assert response.status_code == 202
    result = response.json()["result"]
    assert (result["id"], result["status"], result["fileName"]) == (DEMO_ID, "queued", demo_gguf.name)
    assert result["revision"] == hub.repos[DEMO_REPO].sha
    assert [a["fileName"] for a in result["alternatives"]] == [demo_gguf.name, SMALL_FILE]
    assert hub.bytes_served == 0


def test_it_downloads_verifies_and_shares_the_largest_gguf(api, hub, demo_gguf, settings):
    post(api, url=f"https://huggingface.co/{DEMO_REPO}".replace("https://huggingface.co", hub.url))
    assert download_task(DEMO_ID) == "ready"
    model = api.get(f"/api/ai/models/{DEMO_ID}").json()["result"]
    assert (model["status"], model["sha256"], model["downloadProgress"]) == ("ready", DEMO_SHA256, 100)
    assert model["downloadedBytes"] == model["size"] == demo_gguf.stat().st_size
    assert model["gguf"]["architecture"] == "llama"
    assert (settings.AI_MODEL_DIR / DEMO_ID / demo_gguf.name).stat().st_size == demo_gguf.stat().st_size
    torrent = Torrent.objects.get(copy__model_id=DEMO_ID)
    resolve = f"{hub.url}/{DEMO_REPO}/resolve/{hub.repos[DEMO_REPO].sha}/{demo_gguf.name}"
    assert model["magnetUri"] == (f"magnet:?xt=urn:btih:{torrent.info_hash_v1}&xt=urn:btmh:1220{torrent.info_hash_v2}"
                                  f"&dn={demo_gguf.name}&xl={demo_gguf.stat().st_size}&ws="
                                  + resolve.replace(":", "%3A").replace("/", "%2F"))
    assert AIModel.objects.get(pk=DEMO_ID).web_seed == resolve


def test_it_returns_the_existing_model_when_the_same_file_is_asked_again(api, hub, demo_gguf):
    first = post(api, url=f"{hub.url}/{DEMO_REPO}").json()["result"]
    again = post(api, url=f"{hub.url}/{DEMO_REPO}/blob/main/{demo_gguf.name}").json()["result"]
    assert again["id"] == first["id"]
    assert AIModel.objects.count() == 1


def test_it_gives_a_second_file_of_the_repo_an_id_with_its_quantization(api, hub):
    post(api, url=DEMO_REPO.join([f"{hub.url}/", ""]))
    second = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE).json()["result"]
    assert (second["id"], second["fileName"]) == (f"{DEMO_ID}_Q2_K", SMALL_FILE)
    assert download_task(second["id"]) == "ready"
    assert AIModel.objects.get(pk=second["id"]).status == "ready"


@pytest.mark.parametrize("ref", [f"{DEMO_REPO}:Q2_K", f"hf.co/{DEMO_REPO}:q2_k"])
def test_it_picks_the_quantization_named_after_the_repo(api, hub, ref):
    result = post(api, url=ref).json()["result"]  # owner/repo and hf.co/… are fetched from HF_ENDPOINT
    assert (result["id"], result["fileName"]) == (DEMO_ID, SMALL_FILE)
    assert download_task(result["id"]) == "ready"


def test_it_answers_404_listing_the_quantizations_when_the_named_one_is_missing(api, hub):
    response = post(api, url=f"{hub.url}/{DEMO_REPO}:Q5_K_M")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "quantization_not_found"
    assert error["message"] == "The repository has no Q5_K_M file; its quantizations: Q2_K, Q4_1."
    assert error["quantizations"] == ["Q2_K", "Q4_1"]
    assert AIModel.objects.count() == 0


def test_it_downloads_every_part_of_a_split_model_and_serves_the_first(api, hub, settings):
    result = post(api, url=f"{hub.url}/{SPLIT_REPO}").json()["result"]
    assert result["fileName"] == "Q4_K_M/tiny-q4_k_m-00001-of-00003.gguf"
    assert download_task(result["id"]) == "ready"
    model = AIModel.objects.get(pk=result["id"])
    parts = list(ModelFile.objects.filter(model=model).values_list("name", "verified"))
    assert parts == [(f"Q4_K_M/tiny-q4_k_m-0000{n}-of-00003.gguf", True) for n in (1, 2, 3)]
    assert model.size == sum((settings.AI_MODEL_DIR / model.pk / name).stat().st_size for name, _ in parts)
    assert model.gguf["splitCount"] == 3
    assert model.web_seed == f"{hub.url}/{SPLIT_REPO}/resolve/{hub.repos[SPLIT_REPO].sha}/"
    assert "dn=Q4_K_M" in model.magnet_uri


def test_it_creates_no_torrent_when_asked_not_to(api, hub):
    result = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE, createTorrent=False).json()["result"]
    assert download_task(result["id"]) == "ready"
    assert (AIModel.objects.get(pk=result["id"]).magnet_uri, Torrent.objects.count()) == ("", 0)


@pytest.mark.parametrize("url", ["https://example.com/TheBloke/x", "not a url at all", "https://huggingface.co/a"])
def test_it_rejects_a_url_that_is_not_a_hub_model(api, hub, url):
    response = post(api, url=url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_url"
    assert AIModel.objects.count() == 0


def test_it_answers_404_for_an_unknown_repo(api, hub):
    response = post(api, url=f"{hub.url}/nobody/no-such-model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "repo_not_found"
    assert "nobody/no-such-model" in response.json()["error"]["message"]
    assert AIModel.objects.count() == 0


def test_it_answers_403_for_a_gated_repo_without_token_saying_how_to_get_access(api, hub):
    response = post(api, url=f"{hub.url}/{GATED_REPO}")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "gated_repo"
    assert f"{hub.url}/{GATED_REPO}" in error["message"] and "HF_TOKEN" in error["message"]
    assert AIModel.objects.count() == 0


def test_it_answers_403_for_a_gated_repo_whose_token_has_no_access(api, hub, settings):
    settings.HF_TOKEN = "hf_not_granted"
    response = post(api, url=f"{hub.url}/{GATED_REPO}")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "gated_repo")
    assert AIModel.objects.count() == 0


def test_it_downloads_a_gated_repo_with_a_granted_token(api, hub, settings):
    settings.HF_TOKEN = "hf_fake_good_token"
    result = post(api, url=f"{hub.url}/{GATED_REPO}").json()["result"]
    assert download_task(result["id"]) == "ready"


@pytest.mark.parametrize(("file_name", "code"), [("missing.gguf", "file_not_found"),
                                                  ("../../etc/passwd", "invalid_file_name")])
def test_it_rejects_a_file_name_that_is_not_in_the_repo(api, hub, file_name, code):
    response = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=file_name)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert AIModel.objects.count() == 0


def test_it_answers_422_with_gguf_repos_of_the_same_model_when_there_is_no_gguf(api, hub):
    response = post(api, url=f"{hub.url}/{NO_GGUF_REPO}")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_gguf"
    assert sorted(error["suggestions"]) == ["bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
                                            "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"]
    assert "safetensors" in error["message"] and "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF" in error["message"]
    assert AIModel.objects.count() == 0


def test_it_answers_507_before_downloading_when_the_disk_is_too_small(api, hub, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    response = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE)
    assert response.status_code == 507
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert (AIModel.objects.count(), hub.bytes_served) == (0, 0)


def test_it_marks_a_checksum_mismatch_as_an_error_and_deletes_the_file(api, hub, settings):
    result = post(api, url=f"{hub.url}/{CORRUPT_REPO}").json()["result"]
    assert download_task(result["id"]) == "failed"
    model = api.get(f"/api/ai/models/{result['id']}").json()["result"]
    assert model["status"] == "error"
    assert "Checksum mismatch" in model["error"] and "deleted" in model["error"]
    assert not (settings.AI_MODEL_DIR / result["id"]).exists()


def test_it_keeps_the_partial_file_when_the_hub_fails_mid_transfer_and_resumes_on_the_next_ask(api, hub, settings):
    hub.outage_after = 8 * 1024 * 1024
    post(api, url=f"{hub.url}/{MEDIUM_REPO}")
    assert download_task(MEDIUM_ID) == "failed"
    model = api.get(f"/api/ai/models/{MEDIUM_ID}").json()["result"]
    assert model["status"] == "error"
    assert "503" in model["error"] and "partial file is kept" in model["error"]
    partial = settings.AI_MODEL_DIR / MEDIUM_ID / f"{MEDIUM_FILE}.incomplete"
    kept = partial.stat().st_size
    assert kept >= 8 * 1024 * 1024
    hub.outage_after = 0
    hub.reset_counters()
    again = post(api, url=f"{hub.url}/{MEDIUM_REPO}").json()["result"]
    assert (again["id"], again["status"]) == (MEDIUM_ID, "queued")
    assert download_task(MEDIUM_ID) == "ready"
    assert hub.bytes_served == model["size"] - kept
    assert hub.ranges == [f"bytes={kept}-"]


def test_a_resume_that_the_server_answers_with_the_whole_file_is_still_checked(api, hub, settings):
    """The bytes are hashed as they arrive; a server that ignores the Range makes huggingface_hub rewind the
    partial file, and then the check reads the file instead of trusting the running hashes."""
    hub.outage_after = 8 * 1024 * 1024
    post(api, url=f"{hub.url}/{MEDIUM_REPO}")
    assert download_task(MEDIUM_ID) == "failed"
    hub.outage_after, hub.ignore_range = 0, True
    hub.reset_counters()
    size = post(api, url=f"{hub.url}/{MEDIUM_REPO}").json()["result"]["size"]
    assert download_task(MEDIUM_ID) == "ready"
    model = api.get(f"/api/ai/models/{MEDIUM_ID}").json()["result"]
    assert hub.bytes_served == size and hub.ranges == []  # all of it again, from byte 0
    path = settings.AI_MODEL_DIR / MEDIUM_ID / MEDIUM_FILE
    assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == hub.repo(MEDIUM_REPO).files[
        MEDIUM_FILE].sha256


def test_it_rides_out_connections_cut_mid_transfer(api, hub):
    hub.cut_after = 10 * 1024 * 1024
    size = post(api, url=f"{hub.url}/{MEDIUM_REPO}").json()["result"]["size"]
    assert download_task(MEDIUM_ID) == "ready"
    assert hub.bytes_served == size
    assert len(hub.ranges) == 2


def test_it_reports_the_magnet_path_when_both_url_and_magnet_are_given(api, hub):
    response = post(api, url=DEMO_REPO, magnetUri="magnet:?xt=urn:btih:" + "a" * 40)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_input")


def test_it_needs_a_login(anon_api, hub):
    assert post(anon_api, url=DEMO_REPO).status_code == 401


def test_it_hands_a_magnet_link_to_the_p2p_download(api, hub):
    magnet = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=Tiny.Q4_0.gguf&xl=1234"
    response = post(api, magnetUri=magnet, metadata={"name": "Tiny.Q4_0.gguf", "size": 1234})
    assert response.status_code == 202
    assert (response.json()["result"]["source"], response.json()["result"]["status"]) == ("magnet", "queued")


def test_it_rejects_a_malformed_magnet_link(api, hub):
    response = post(api, magnetUri="magnet:?dn=nothing")
    assert response.status_code == 400
    assert AIModel.objects.count() == 0


def test_it_answers_503_when_the_hub_is_unreachable(api, hub, settings):
    settings.HF_ENDPOINT = "http://127.0.0.1:9"
    response = post(api, url=DEMO_REPO)
    assert (response.status_code, response.json()["error"]["code"]) == (503, "hub_unreachable")
    assert "http://127.0.0.1:9" in response.json()["error"]["message"]
    assert AIModel.objects.count() == 0


def test_it_retries_a_failing_hub_then_says_why_the_download_stopped(api, hub):
    model_id = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE).json()["result"]["id"]
    hub.down = True
    assert download_task(model_id) == "failed"
    model = AIModel.objects.get(pk=model_id)
    assert model.status == "error"
    assert "after 3 attempt(s)" in model.error and "503" in model.error


def test_it_retries_a_hub_that_fails_twice_and_finishes_verified(api, hub):
    model_id = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE).json()["result"]["id"]
    hub.fail_next = 2

    assert download_task(model_id) == "ready"
    model = AIModel.objects.get(pk=model_id)
    assert (model.status, model.error, hub.fail_next) == ("ready", "", 0)
    assert model.files.get().verified and model.sha256 == model.files.get().sha256


def test_it_does_not_retry_a_file_the_hub_does_not_have(api, hub, monkeypatch):
    model_id = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE).json()["result"]["id"]
    monkeypatch.delitem(hub.repo(DEMO_REPO).files, SMALL_FILE)

    assert download_task(model_id) == "failed"
    assert "after 1 attempt(s)" in AIModel.objects.get(pk=model_id).error


def test_it_picks_the_largest_gguf_that_fits_the_free_disk(api, hub, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    result = post(api, url=f"{hub.url}/{DEMO_REPO}").json()["result"]
    assert result["fileName"] == SMALL_FILE
    assert [a["fileName"] for a in result["alternatives"]][0] != SMALL_FILE


def test_it_downloads_a_private_repo_only_with_a_token_that_sees_it(api, hub, settings):
    hidden = post(api, url=f"{hub.url}/{PRIVATE_REPO}")
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "repo_not_found")
    settings.HF_TOKEN = "hf_fake_good_token"
    result = post(api, url=f"{hub.url}/{PRIVATE_REPO}").json()["result"]
    assert download_task(result["id"]) == "ready"


def test_it_requeues_a_download_left_behind_by_a_dead_worker_on_the_next_reconcile(api, hub):
    from models_app.hub.services import downloads_reconcile

    model_id = post(api, url=f"{hub.url}/{DEMO_REPO}", fileName=SMALL_FILE).json()["result"]["id"]
    copy_update(model_id, status="downloading")  # what a killed worker leaves
    assert downloads_reconcile() == 1
    assert AIModel.objects.get(pk=model_id).status == "queued"
    assert download_task(model_id) == "ready"


def test_it_picks_the_largest_gguf_that_the_memory_limit_can_serve(api, hub, settings):
    settings.LLAMA_MEMORY_LIMIT = 10 * 1024 * 1024
    assert post(api, url=f"{hub.url}/{DEMO_REPO}").json()["result"]["fileName"] == SMALL_FILE


def test_it_answers_507_when_no_gguf_of_the_repo_fits(api, hub, settings):
    settings.LLAMA_MEMORY_LIMIT = 1000
    response = post(api, url=f"{hub.url}/{DEMO_REPO}")
    assert (response.status_code, response.json()["error"]["code"]) == (507, "insufficient_storage")
    assert SMALL_FILE in response.json()["error"]["message"]
    assert len(response.json()["error"]["alternatives"]) == 2
    assert AIModel.objects.count() == 0

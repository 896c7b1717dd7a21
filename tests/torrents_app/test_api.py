from __future__ import annotations

import pytest

from models_app.models import AIModel
from models_app.services import model_import_local
from torrents_app.models import Torrent

V1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(settings, small_gguf):
    settings.NODE_NAME = "alpha"
    return model_import_local(path=small_gguf)


def _download(api, body):
    return api.post("/api/ai/download", body, format="json")


def test_it_queues_a_magnet_download_named_after_the_magnet(api, settings):
    response = _download(api, {"magnetUri": f"magnet:?xt=urn:btih:{V1}&dn=Cool-Model.Q4_K_M.gguf&xl=1000"})
    assert response.status_code == 202
    model = response.json()["result"]
    assert (model["id"], model["source"], model["status"], model["size"]) == ("Cool-Model.Q4_K_M", "magnet", "queued", 1000)
    assert Torrent.objects.get(copy__model_id=model["id"]).desired == "download"
    again = _download(api, {"magnetUri": f"magnet:?xt=urn:btih:{V1}&dn=Other-Name"})
    assert (again.status_code, again.json()["result"]["id"]) == (202, "Cool-Model.Q4_K_M")


def test_it_refuses_a_malformed_magnet_and_creates_nothing(api):
    response = _download(api, {"magnetUri": "magnet:?xt=urn:btih:not-a-hash"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_magnet"
    assert "not a v1 info-hash" in response.json()["error"]["message"]
    assert not AIModel.objects.exists()


@pytest.mark.parametrize("body", [
    {"magnetUri": f"magnet:?xt=urn:btih:{V1}&xl={10**17}"},
    {"magnetUri": f"magnet:?xt=urn:btih:{V1}", "metadata": {"name": "huge", "size": 10**17}},
])
def test_it_refuses_a_download_that_does_not_fit_on_disk(api, body):
    response = _download(api, body)
    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage" and "Not enough disk space" in error["message"]
    assert not AIModel.objects.exists()


def test_it_refuses_bad_metadata(api):
    response = _download(api, {"magnetUri": f"magnet:?xt=urn:btih:{V1}", "metadata": {"size": "big"}})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_metadata")
    assert not AIModel.objects.exists()


def test_it_pauses_and_resumes_seeding_through_the_api(api, ready):
    paused = api.post(f"/api/ai/models/{ready.pk}/seeding", {"enabled": False}, format="json")
    assert (paused.status_code, paused.json()["result"]["seeding"]) == (200, False)
    assert Torrent.objects.get(copy__model_id=ready.pk).desired == "pause"
    resumed = api.post(f"/api/ai/models/{ready.pk}/seeding", {"enabled": True}, format="json")
    assert resumed.json()["result"]["seeding"] is True
    assert Torrent.objects.get(copy__model_id=ready.pk).desired == "seed"


def test_it_refuses_a_seeding_request_without_enabled(api, ready):
    response = api.post(f"/api/ai/models/{ready.pk}/seeding", {}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_input")
    assert AIModel.objects.get(pk=ready.pk).seeding is True


def test_it_answers_404_for_seeding_an_unknown_model(api):
    response = api.post("/api/ai/models/nope/seeding", {"enabled": True}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")


def test_it_serves_the_torrent_file(api, ready):
    response = api.get(f"/api/ai/models/{ready.pk}/torrent")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-bittorrent"
    assert response.content == bytes(Torrent.objects.get(copy__model_id=ready.pk).torrent_file)
    assert f'filename="{ready.pk}.torrent"' in response["Content-Disposition"]


def test_it_answers_404_when_a_model_has_no_torrent_yet(api):
    queued = _download(api, {"magnetUri": f"magnet:?xt=urn:btih:{V1}&dn=later"}).json()["result"]
    response = api.get(f"/api/ai/models/{queued['id']}/torrent")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "torrent_not_found")


def test_it_asks_anonymous_callers_to_log_in(anon_api, ready):
    assert anon_api.get(f"/api/ai/models/{ready.pk}/torrent").status_code == 401
    assert anon_api.post(f"/api/ai/models/{ready.pk}/seeding", {"enabled": False}, format="json").status_code == 401


def test_it_pauses_seeding_from_the_admin(client, admin_user, ready):
    client.force_login(admin_user)
    torrent = Torrent.objects.get(copy__model_id=ready.pk)
    response = client.post("/admin/torrents_app/torrent/", {"action": "pause_seeding",
                                                            "_selected_action": [torrent.pk]}, follow=True)
    assert "Paused seeding of 1 model(s)." in response.content.decode()
    assert (AIModel.objects.get(pk=ready.pk).seeding, Torrent.objects.get(copy__model_id=ready.pk).desired) == (False, "pause")


@pytest.mark.parametrize("value", [0, 1, "true", "off", None])
def test_it_takes_only_a_json_boolean_for_seeding(api, ready, value):
    response = api.post(f"/api/ai/models/{ready.pk}/seeding", {"enabled": value}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert AIModel.objects.get(pk=ready.pk).seeding is True

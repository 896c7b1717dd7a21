from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from chat.models import ChatSession
from models_app.models import AIModel, ServedInstance
from tests.web.conftest import HUB_REPO

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_layer")]


@pytest.mark.parametrize("url", ["/", "/models/add/", "/models/tiny/", "/chat/", "/chat/1/"])
def test_it_sends_a_visitor_to_log_in_first(client, url):
    response = client.get(url)
    assert (response.status_code, response["Location"]) == (302, f"/login/?next={url}")


def test_it_refuses_a_chat_message_from_a_visitor(client):
    response = client.post("/chat/send/", {"model": "tiny", "message": "hi"})
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/chat/send/")


def test_it_lists_models_with_their_status_and_progress(web, tiny):
    page = web.get("/").content.decode()
    assert 'id="model-tiny"' in page and 'data-status="ready"' in page
    assert 'aria-valuenow="100"' in page


def test_it_answers_404_for_an_unknown_model(web):
    response = web.get("/models/nope/")
    assert response.status_code == 404
    assert "No model with id &#x27;nope&#x27;." in response.content.decode()


def test_it_shows_a_serve_option_out_of_range_next_to_its_field_and_serves_nothing(web, tiny):
    response = web.post("/models/tiny/serve/", {"context_size": "5", "next": "detail"})
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_context_size-error"' in page and "greater than or equal to 128" in page
    assert not ServedInstance.objects.filter(model_id="tiny").exists()
    assert AIModel.objects.get(pk="tiny").status == "ready"


def test_it_explains_next_to_the_model_why_a_download_cannot_be_served(web, settings, fake_hub):
    settings.HF_ENDPOINT = fake_hub.url
    web.post("/models/add/", {"source": HUB_REPO, "file_name": "tinyllama-q4_k_m.gguf", "create_torrent": "on"})
    model = AIModel.objects.get(repo_id=HUB_REPO)
    response = web.post(f"/models/{model.pk}/serve/")
    page = response.content.decode()
    assert response.status_code == 409
    assert f'id="model-{model.pk}-error"' in page and "not ready to serve" in page
    assert AIModel.objects.get(pk=model.pk).status == "queued"


def test_it_deletes_a_model_with_its_files(web, tiny, settings, django_capture_on_commit_callbacks):
    folder = settings.AI_MODEL_DIR / "tiny"
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post("/models/tiny/delete/", {"delete_files": "on", "next": "detail"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert not AIModel.objects.filter(pk="tiny").exists()
    assert not folder.exists()


def test_it_says_a_model_to_delete_is_gone_already(web, tiny):
    response = web.post("/models/nope/delete/", {"next": "detail"})
    assert response.status_code == 404
    assert "No model with id &#x27;nope&#x27;." in response.content.decode()
    assert AIModel.objects.filter(pk="tiny").exists()


def test_it_hands_out_the_torrent_file(web, tiny):
    response = web.get("/models/tiny/torrent/")
    assert response["Content-Type"] == "application/x-bittorrent"
    assert response["Content-Disposition"] == 'attachment; filename="tiny.torrent"'
    assert response.content.startswith(b"d") and b"tiny.gguf" in response.content


def test_it_says_the_model_is_not_serving_when_chatting(web, tiny):
    response = web.post("/chat/send/", {"model": "tiny", "message": "hello"})
    assert response.status_code == 409
    assert "not serving: serve it first" in response.json()["error"]["message"]
    assert not ChatSession.objects.filter(messages__isnull=False).exists()


def test_it_refuses_an_empty_message_with_a_reason(web, tiny):
    response = web.post("/chat/send/", {"model": "tiny", "message": "   "})
    assert (response.status_code, response.json()["error"]["message"]) == (400, "The message is empty.")


def test_it_asks_to_pick_a_model_before_chatting(web):
    response = web.post("/chat/send/", {"model": "", "message": "hello"})
    assert (response.status_code, response.json()["error"]["message"]) == (400, "Pick a model to chat with.")


def test_it_keeps_other_peoples_chats_private(web, tiny):
    other = get_user_model().objects.create_user("other", password="pw")
    session = ChatSession.objects.create(user=other, model=tiny, title="secret")
    assert web.get(f"/chat/{session.pk}/").status_code == 404
    assert web.post(f"/chat/{session.pk}/clear/").status_code == 404
    assert ChatSession.objects.get(pk=session.pk).active


def test_it_clears_a_chat(web, admin_user, tiny):
    from chat.services import session_for_web_user

    session = session_for_web_user(user=admin_user, model_id="tiny")
    session.messages.create(role="user", content="hi")
    response = web.post(f"/chat/{session.pk}/clear/")
    session.refresh_from_db()
    assert (response.status_code, response["Location"]) == (302, "/chat/")
    assert (session.active, session.messages.count()) == (False, 0)
    assert f"/chat/{session.pk}/" not in web.get("/chat/").content.decode()


def test_it_cancels_a_queued_download(web, settings, fake_hub):
    settings.HF_ENDPOINT = fake_hub.url
    web.post("/models/add/", {"source": HUB_REPO, "file_name": "tinyllama-q4_k_m.gguf", "create_torrent": "on"})
    model = AIModel.objects.get(repo_id=HUB_REPO)
    assert f'action="/models/{model.pk}/delete/"' in web.get("/").content.decode()
    response = web.post(f"/models/{model.pk}/delete/", {"delete_files": "on"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert not AIModel.objects.filter(pk=model.pk).exists()


def test_it_downloads_a_file_link_without_asking_which_file(web, settings, fake_hub):
    settings.HF_ENDPOINT = fake_hub.url
    response = web.post("/models/add/", {"source": f"{fake_hub.url}/{HUB_REPO}/blob/main/tinyllama-q8_0.gguf",
                                         "create_torrent": "on"})
    model = AIModel.objects.get(repo_id=HUB_REPO)
    assert (response.status_code, response["Location"]) == (302, f"/#model-{model.pk}")
    assert model.file_name == "tinyllama-q8_0.gguf"


def test_it_lists_the_files_of_a_repository_to_choose_from(web, settings, fake_hub):
    settings.HF_ENDPOINT = fake_hub.url
    page = web.post("/models/add/", {"source": HUB_REPO, "create_torrent": "on"}).content.decode()
    assert 'value="tinyllama-q8_0.gguf"' in page and 'value="tinyllama-q4_k_m.gguf" checked' in page
    assert not AIModel.objects.exists()

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from chat.models import ChatMessage, ChatSession
from telegram_bot.models import ProcessedUpdate

pytestmark = pytest.mark.django_db

REGISTERED = [
    "aiportal.node", "models_app.aimodel", "models_app.modelfile", "models_app.servedinstance", "torrents_app.torrent",
    "chat.chatsession", "chat.chatmessage", "telegram_bot.processedupdate",
]


@pytest.fixture
def populated(demo_gguf, admin_user):
    call_command("import_model", str(demo_gguf), "--id", "smol")
    session = ChatSession.objects.create(user=admin_user, model_id="smol")
    ChatMessage.objects.create(session=session, role="user", content="What is the capital of France?")
    ProcessedUpdate.objects.create(update_id=1001, kind="message", chat_id=5, user_id=5)


def test_it_registers_every_model_in_admin():
    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
    assert set(REGISTERED) <= registered


@pytest.mark.parametrize("label", REGISTERED)
def test_it_renders_the_admin_changelist_and_add_pages(client, admin_user, populated, label):
    client.force_login(admin_user)
    app, model = label.split(".")
    assert client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:{app}_{model}_changelist") + "?q=smol").status_code == 200
    assert client.get(reverse(f"admin:{app}_{model}_add")).status_code == 200


def test_it_renders_a_model_change_page(client, admin_user, populated):
    client.force_login(admin_user)
    response = client.get(reverse("admin:models_app_aimodel_change", args=["smol"]))
    assert response.status_code == 200
    assert b"SmolLM2-135M-Instruct.Q4_1.gguf" in response.content


def test_it_sends_anonymous_visitors_of_admin_to_the_login_page(client):
    response = client.get(reverse("admin:models_app_aimodel_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]

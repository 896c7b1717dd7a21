from __future__ import annotations

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_it_rejects_anonymous_requests_with_401_in_the_envelope(anon_api):
    response = anon_api.get("/api/ai/list")
    assert response.status_code == 401
    assert response.json() == {
        "ok": False,
        "error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."},
    }


def test_it_rejects_anonymous_writes(anon_api):
    response = anon_api.delete("/api/ai/models/anything")
    assert response.status_code == 401
    assert response.json()["ok"] is False


def test_it_rejects_a_wrong_token(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = anon_api.get("/api/ai/list")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_it_accepts_a_bearer_token(anon_api, api_token):
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    assert anon_api.get("/api/ai/list").json() == {"ok": True, "result": []}


def test_it_answers_unknown_api_routes_with_404_in_the_envelope(api):
    response = api.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "/api/no/such/thing" in response.json()["error"]["message"]


def test_it_answers_an_unknown_model_with_404(api):
    response = api.get("/api/ai/models/nope")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "model_not_found", "message": "No model with id 'nope'."}


def test_it_lists_models_in_the_envelope_with_every_field(api, demo_gguf):
    call_command("import_model", str(demo_gguf))
    body = api.get("/api/ai/list").json()
    assert body["ok"] is True
    (model,) = body["result"]
    expected_keys = {
        "id", "name", "source", "repoId", "revision", "fileName", "format", "size", "sha256", "status",
        "downloadProgress", "downloadRate", "uploadRate", "downloadedBytes", "uploadedBytes", "peers", "seeds",
        "shareRatio", "magnetUri", "infoHash", "seeding", "error", "server", "gguf", "createdAt", "updatedAt",
    }
    assert expected_keys <= set(model)
    assert model["status"] == "ready"
    assert model["format"] == "gguf"
    assert model["gguf"]["architecture"] == "llama"


def test_it_deletes_a_model_and_its_files_inside_the_model_dir(api, demo_gguf, settings, django_capture_on_commit_callbacks):
    copy = settings.AI_MODEL_DIR / "smol" / demo_gguf.name
    copy.parent.mkdir()
    copy.write_bytes(demo_gguf.read_bytes())
    call_command("import_model", str(copy), "--id", "smol")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/ai/models/smol?deleteFiles=true")
    assert response.json() == {"ok": True, "result": {"id": "smol", "deleted": True}}
    assert api.get("/api/ai/models/smol").status_code == 404
    assert not copy.exists()


def test_it_keeps_files_when_deleting_without_deletefiles(api, demo_gguf):
    call_command("import_model", str(demo_gguf), "--id", "smol")
    api.delete("/api/ai/models/smol")
    assert demo_gguf.exists()


def test_it_serves_the_openapi_schema(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/ai/list" in response.content


@pytest.fixture
def broken_models_table(db):
    """The model table gone from under the running portal: every service that reads it raises."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE models_app_aimodel RENAME TO models_app_aimodel_away")


def test_it_answers_an_unexpected_error_with_the_envelope_and_a_request_id(api, broken_models_table, caplog):
    response = api.get("/api/ai/list", HTTP_X_REQUEST_ID="req-42")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (response.json()["ok"], error["code"], error["requestId"]) == (False, "internal_error", "req-42")
    assert "req-42" in error["message"]
    logged = [r for r in caplog.records if r.name == "aiportal.errors"]
    assert "[request req-42]" in logged[0].getMessage() and logged[0].exc_info is not None


def test_it_answers_an_unexpected_error_under_v1_with_openais_error_object(anon_api, api_token, broken_models_table):
    response = anon_api.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {api_token}")

    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert error["request_id"] == response["X-Request-Id"]

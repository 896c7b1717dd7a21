from __future__ import annotations

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator

MODEL = "#/components/schemas/Model"
ERROR = "#/components/schemas/ErrorEnvelope"


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def smol(demo_gguf) -> str:
    call_command("import_model", str(demo_gguf), "--id", "smol")
    return "smol"


def _json_schema(node):
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes "or null"."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def _documented(openapi: dict, path: str, method: str, status: int) -> dict:
    return openapi["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]


def _component(openapi: dict, ref: str) -> dict:
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _assert_matches(openapi: dict, path: str, method: str, response) -> None:
    root = {**_json_schema(openapi), "$ref": _documented(openapi, path, method, response.status_code)["$ref"]}
    errors = [error.message for error in Draft202012Validator(root).iter_errors(response.json())]
    assert errors == []


def test_it_generates_the_schema_without_warnings_or_errors(tmp_path, capsys):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert capsys.readouterr().err == ""
    assert "/api/ai/models/{model_id}/seeding" in (tmp_path / "schema.yaml").read_text()


def test_it_documents_the_seeding_body_as_enabled_only(openapi):
    body = openapi["paths"]["/api/ai/models/{model_id}/seeding"]["post"]["requestBody"]["content"]["application/json"]
    seeding_input = _component(openapi, body["schema"]["$ref"])
    assert seeding_input["properties"] == {"enabled": {"type": "boolean"}}
    assert seeding_input["required"] == ["enabled"]


def test_it_documents_download_and_serve_as_202_with_the_model_in_the_envelope(openapi):
    serve = _component(openapi, _documented(openapi, "/api/ai/serve", "post", 202)["$ref"])
    download = _component(openapi, _documented(openapi, "/api/ai/download", "post", 202)["$ref"])
    assert serve["properties"]["result"] == {"$ref": MODEL}
    assert _component(openapi, download["properties"]["result"]["$ref"])["allOf"][0] == {"$ref": MODEL}
    assert serve["required"] == download["required"] == ["ok", "result"]
    assert "200" not in openapi["paths"]["/api/ai/serve"]["post"]["responses"]
    assert "200" not in openapi["paths"]["/api/ai/download"]["post"]["responses"]


def test_it_documents_both_deletes_as_200_with_a_body(openapi):
    deletes = [openapi["paths"][path]["delete"]["responses"] for path in ("/api/ai/serve", "/api/ai/models/{model_id}")]
    assert [sorted(code for code in responses if code < "300") for responses in deletes] == [["200"], ["200"]]
    assert [responses["200"]["content"]["application/json"]["schema"]["$ref"] for responses in deletes] == [
        "#/components/schemas/ModelEnvelope", "#/components/schemas/DeletedModelEnvelope"]


def test_it_documents_token_and_bearer_as_two_schemes(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {"type": "apiKey", "in": "header", "name": "Authorization",
                                    "description": "`Authorization: Token <key>` with an API token."}
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert openapi["paths"]["/api/ai/list"]["get"]["security"] == [{"tokenAuth": []}, {"bearerAuth": []},
                                                                   {"cookieAuth": []}]


def test_it_documents_the_error_envelope_for_every_failure(openapi):
    failures = {
        (path, method, code): answer["content"]["application/json"]["schema"]["$ref"]
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
        for code, answer in operation["responses"].items() if code >= "400"
    }
    assert set(failures.values()) == {ERROR}
    assert {("/api/ai/models/{model_id}/seeding", "post", "400"), ("/api/ai/models/{model_id}", "get", "404"),
            ("/api/ai/download", "post", "400"), ("/api/ai/serve", "post", "404")} <= set(failures)
    assert _component(openapi, ERROR)["properties"]["error"]["required"] == ["code", "message"]


def test_it_leaves_the_openai_compatible_api_out(openapi):
    assert [path for path in openapi["paths"] if not path.startswith("/api/ai/")] == []


@pytest.mark.django_db
def test_it_documents_exactly_the_fields_of_the_model_object(openapi, api, smol):
    model = api.get(f"/api/ai/models/{smol}").json()["result"]
    assert set(_component(openapi, MODEL)["properties"]) == set(model)


@pytest.mark.django_db
def test_it_describes_real_answers_truthfully(openapi, api, smol):
    _assert_matches(openapi, "/api/ai/list", "get", api.get("/api/ai/list"))
    _assert_matches(openapi, "/api/ai/models/{model_id}", "get", api.get(f"/api/ai/models/{smol}"))
    _assert_matches(openapi, "/api/ai/models/{model_id}", "get", api.get("/api/ai/models/nope"))
    seeding = f"/api/ai/models/{smol}/seeding"
    _assert_matches(openapi, "/api/ai/models/{model_id}/seeding", "post", api.post(seeding, {}, format="json"))
    paused = api.post(seeding, {"enabled": False}, format="json")
    _assert_matches(openapi, "/api/ai/models/{model_id}/seeding", "post", paused)
    started = api.post("/api/ai/serve", {"modelId": smol}, format="json")
    assert started.status_code == 202
    _assert_matches(openapi, "/api/ai/serve", "post", started)
    _assert_matches(openapi, "/api/ai/serve", "delete", api.delete(f"/api/ai/serve?modelId={smol}"))
    deleted = api.delete(f"/api/ai/models/{smol}")
    assert deleted.status_code == 200
    _assert_matches(openapi, "/api/ai/models/{model_id}", "delete", deleted)

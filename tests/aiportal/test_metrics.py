"""`GET /metrics`: Prometheus text, behind a token unless METRICS_PUBLIC opens it.

In-process for auth, doors and a llama-server that does not answer; against the real portal and
llama-server for the counters that a chat moves and llama-server's own figures.
"""
from __future__ import annotations

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models_app.models import ServedInstance, ServeState, Source
from tests.conftest import free_port, wait_for
from tests.models_app.inference.portal import TOKEN
from tests.factories import model_make


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a scrape; it must parse as Prometheus text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_it_refuses_a_scrape_without_a_token(anon_api):
    response = anon_api.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer <api token>" in response.content.decode() and "METRICS_PUBLIC" in response.content.decode()


@pytest.mark.django_db
def test_it_refuses_a_wrong_token(anon_api):
    response = anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert "Invalid token" in response.content.decode()


@pytest.mark.django_db
def test_it_answers_anyone_when_metrics_are_public(anon_api, settings):
    settings.METRICS_PUBLIC = True

    response = anon_api.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


@pytest.mark.django_db
def test_it_counts_requests_per_front_door(anon_api, api_token):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token}"}
    before = samples(anon_api.get("/metrics", **auth).content.decode())

    anon_api.get("/api/ai/list", HTTP_AUTHORIZATION=f"Token {api_token}")
    anon_api.get("/v1/models", **auth)
    anon_api.get("/v1/models")  # no token: 401
    anon_api.get("/api/tags", **auth)
    after = samples(anon_api.get("/metrics", **auth).content.decode())

    def moved(door, status):
        key = dict(door=door, method="GET", status=status)
        return value(after, "aiportal_requests_total", **key) - value(before, "aiportal_requests_total", **key)

    assert (moved("rest", "200"), moved("openai", "200"), moved("openai", "401"), moved("ollama", "200")) == (1, 1, 1, 1)
    assert value(after, "aiportal_request_duration_seconds_count", door="openai") >= 2
    assert moved("ops", "200") == 1  # the first scrape


@pytest.mark.django_db
def test_it_says_a_serving_llama_server_that_does_not_answer_is_down(anon_api, api_token, tmp_path):
    model = model_make(id="gone", name="gone", source=Source.LOCAL, size=123, node="n1", downloaded_bytes=100,
                       uploaded_bytes=40)
    ServedInstance.objects.create(model=model, node="n1", state=ServeState.SERVING, host="127.0.0.1",
                                  port=free_port(), api_key="k", tokens_generated=7)

    response = anon_api.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {api_token}")

    assert response.status_code == 200
    scraped = samples(response.content.decode())
    assert value(scraped, "aiportal_llama_server_up", model="gone", node="n1") == 0
    assert value(scraped, "aiportal_models", status="serving") == 1
    assert value(scraped, "aiportal_tokens_generated_total", model="gone", node="n1") == 7
    assert value(scraped, "aiportal_model_downloaded_bytes_total", model="gone", node="n1") == 100
    assert value(scraped, "aiportal_model_uploaded_bytes_total", model="gone", node="n1") == 40
    assert value(scraped, "aiportal_model_size_bytes", model="gone") == 123


def scrape(portal) -> dict:
    response = httpx.get(f"{portal.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200
    return samples(response.text)


def test_a_chat_through_each_door_moves_the_counters(llama_portal):
    chat = openai.OpenAI(base_url=f"{llama_portal.url}/v1", api_key=TOKEN)
    ollama_client = ollama.Client(host=llama_portal.url, headers={"Authorization": f"Bearer {TOKEN}"})
    chat.models.list()  # the model serves (started on demand by the first chat)
    chat.chat.completions.create(model="demo-a", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    node = llama_portal.model("demo-a")["instances"][0]["node"]
    before = scrape(llama_portal)

    plain = chat.chat.completions.create(model="demo-a", messages=[{"role": "user", "content": "Name a colour."}],
                                         max_tokens=6, temperature=0)
    streamed = list(chat.completions.create(model="demo-a", prompt="One, two,", max_tokens=5, temperature=0,
                                            stream=True))
    answer = ollama_client.generate(model="demo-a", prompt="Say yes.", options={"num_predict": 4, "temperature": 0})
    tokens = dict(model="demo-a", node=node)

    def moved(scraped, name):
        return value(scraped, name, **tokens) - value(before, name, **tokens)

    # A stream's tokens are written just after its last byte went out: poll until both counts agree.
    seen = []

    def agreed():
        scraped = scrape(llama_portal)
        seen.append((moved(scraped, "aiportal_tokens_generated_total"), moved(scraped, "llamacpp:tokens_predicted_total")))
        return scraped if seen[-1][0] == seen[-1][1] else None

    try:
        after = wait_for(agreed, what="the portal's token count to match llama-server's", timeout=10)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (portal, llama-server) seen: {sorted(set(seen))}") from None

    # llama-server's own count of the same answers (its /metrics, re-exposed) is the portal's count
    assert moved(after, "aiportal_tokens_generated_total") >= (
        plain.usage.completion_tokens + answer.eval_count + sum(1 for c in streamed if c.choices[0].text))
    assert value(after, "aiportal_llama_server_up", **tokens) == 1
    for door in ("openai", "ollama"):
        key = dict(door=door, method="POST", status="200")
        assert value(after, "aiportal_requests_total", **key) > value(before, "aiportal_requests_total", **key)
    assert value(after, "aiportal_models", status="serving") >= 1

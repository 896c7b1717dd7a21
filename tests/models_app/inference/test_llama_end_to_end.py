from __future__ import annotations

from pathlib import Path

import pytest

from tests.models_app.inference.portal import PARIS, Portal


@pytest.fixture(scope="module")
def served_a(llama_portal) -> Portal:
    response = llama_portal.api("POST", "/api/ai/serve", json={"modelId": "demo-a"})
    assert response.status_code == 202, response.text
    llama_portal.wait_status("demo-a", "serving")
    return llama_portal


def test_it_serves_the_demo_model_and_answers_about_paris(served_a):
    response = served_a.api("POST", "/api/ai/chat", json={"modelId": "demo-a", "messages": PARIS, "temperature": 0,
                                                          "maxTokens": 32})

    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert "Paris" in result["content"]
    assert result["usage"]["promptTokens"] > 0
    assert result["usage"]["completionTokens"] > 0
    assert result["usage"]["totalTokens"] == result["usage"]["promptTokens"] + result["usage"]["completionTokens"]


def test_it_serves_two_models_at_once(served_a):
    served_a.api("POST", "/api/ai/serve", json={"modelId": "demo-b", "contextSize": 512, "threads": 1})
    b = served_a.wait_status("demo-b", "serving")
    a = served_a.model("demo-a")

    assert a["status"] == "serving"
    assert a["server"]["port"] != b["server"]["port"]
    assert b["server"]["contextSize"] == 512
    for model_id in ("demo-a", "demo-b"):
        chat = served_a.api("POST", "/api/ai/chat", json={"modelId": model_id, "messages": PARIS, "maxTokens": 8})
        assert chat.status_code == 200, chat.text
        assert chat.json()["result"]["content"].strip()


def test_it_stops_a_served_model(served_a):
    served_a.api("POST", "/api/ai/serve", json={"modelId": "demo-b"})
    served_a.wait_status("demo-b", "serving")

    response = served_a.api("DELETE", "/api/ai/serve", params={"modelId": "demo-b"})

    assert response.status_code == 200
    assert response.json()["result"]["status"] in {"stopping", "ready"}
    stopped = served_a.wait_status("demo-b", "ready")
    assert stopped["server"] is None
    chat = served_a.api("POST", "/api/ai/chat", json={"modelId": "demo-b", "messages": PARIS})
    assert chat.status_code == 409


def test_it_brings_serving_models_back_after_the_node_daemon_restarts(served_a):
    before = served_a.model("demo-a")["server"]["port"]

    served_a.stop_node()
    assert served_a.model("demo-a")["status"] == "starting"
    served_a.start_node()
    back = served_a.wait_status("demo-a", "serving")

    assert back["server"]["port"] > 0
    assert before > 0
    chat = served_a.api("POST", "/api/ai/chat", json={"modelId": "demo-a", "messages": PARIS, "maxTokens": 8})
    assert chat.status_code == 200, chat.text


def test_it_leaves_no_llama_server_behind_when_the_node_daemon_is_killed(served_a):
    served_a.wait_status("demo-a", "serving")
    pid = served_a.instance_pid("demo-a")

    served_a.node.kill()
    served_a.node.wait(timeout=10)
    served_a.wait(lambda: process_gone(pid), f"llama-server {pid} gone", timeout=10)
    served_a.start_node()

    served_a.wait(lambda: served_a.instance_pid("demo-a") not in (None, pid), "a new llama-server")
    assert served_a.wait_status("demo-a", "serving")["server"]["port"] > 0


def process_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True

"""The model pages for every state a model can be in (rendered with the test client)."""
from __future__ import annotations

import re

import pytest
from django.conf import settings

from models_app.models import AIModel, ServedInstance
from tests.web.conftest import HUB_REPO
from tests.factories import model_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_layer")]
CRASH = "llama-server exited with code 1. Last lines:\nload_model: loading tensors\nerror: out of memory"
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=mystery.gguf"


@pytest.fixture
def crashed(tiny) -> AIModel:
    """The tiny model after its llama-server died: the error is the log tail, on the model and its instance."""
    ServedInstance.objects.create(model=tiny, node=settings.NODE_NAME, desired="serving", state="error", error=CRASH)
    return AIModel.objects.get(pk="tiny")


def fact(page: str, name: str) -> str:
    return re.search(rf"<dt>{name}</dt><dd>(.*?)</dd>", page).group(1)


@pytest.mark.parametrize("status, size, error", [("queued", 0, ""), ("downloading", 6_000_000, ""),
                                                 ("error", 6_000_000, "Download failed: the Hub answered 404.")])
def test_it_shows_a_model_without_gguf_metadata(web, status, size, error):
    model_make(id="pending", name="Pending", source="huggingface", repo_id=HUB_REPO, status=status,
                           size=size, error=error, file_name="tinyllama-q4_k_m.gguf")
    response = web.get("/models/pending/")
    page = response.content.decode()
    assert response.status_code == 200
    assert (fact(page, "Architecture"), fact(page, "Parameters")) == ("—", "—")
    assert f'data-status="{status}"' in page


def test_it_shows_a_parameter_count_without_size_label_in_human_form(web, tiny):
    AIModel.objects.filter(pk="tiny").update(gguf={"architecture": "llama", "parameters": 15_000_064, "sizeLabel": ""})
    assert fact(web.get("/models/tiny/").content.decode(), "Parameters") == "15.0 M"


def test_it_says_a_magnet_waits_for_peers_while_its_size_is_unknown(web):
    model_make(id="mystery", name="mystery.gguf", source="magnet", status="queued", magnet_uri=MAGNET)
    row = web.get("/models/mystery/row/").content.decode()
    detail = web.get("/models/mystery/").content.decode()
    assert 'data-size-known="0"' in row and "Waiting for peers / metadata" in row
    assert 'data-size-known="0"' in detail and "Waiting for peers / metadata" in detail
    assert fact(detail, "Size") == "—"


def test_it_separates_a_rows_facts_without_characters_that_can_start_a_line(web, tiny):
    page = web.get("/").content.decode()
    sub = re.search(r'<p class="model-sub".*?</p>', page, re.S).group(0)
    assert "tiny" in sub and "Local file" in sub
    assert "·" not in sub


def test_it_shows_a_crash_report_once_with_its_lines(web, crashed):
    page = web.get("/models/tiny/").content.decode()
    assert page.count("error: out of memory") == 1
    assert re.search(r'<pre class="[^"]*error-text[^"]*" data-field="error">' + re.escape(CRASH) + "</pre>", page)


def test_it_leaves_a_crashs_last_lines_to_the_server_log_when_there_is_one(web, crashed, tmp_path):
    log = tmp_path / "llama-tiny.log"
    log.write_text("build: 1 (abc)\nload_model: loading tensors\nerror: out of memory\n")
    ServedInstance.objects.filter(model_id="tiny").update(log_path=str(log))
    page = web.get("/models/tiny/").content.decode()
    assert page.count("error: out of memory") == 1
    assert re.search(r'<pre class="log"[^>]*>build: 1 \(abc\)\nload_model: loading tensors\nerror: out of memory</pre>', page)
    assert re.search(r'data-field="error" data-format="firstline">llama-server exited with code 1. Last lines:</pre>', page)


def test_it_offers_to_serve_again_or_clear_the_error_of_a_crashed_model(web, crashed):
    page = web.get("/models/tiny/").content.decode()
    assert re.search(r'<section class="only-ready-or-error card"[^>]*>\s*<h2 id="serve-h">', page)
    assert 'action="/models/tiny/serve/"' in page
    clear = re.search(r'<form class="only-error[^"]*" method="post" action="(/models/tiny/stop/)">.*?</form>', page, re.S)
    assert "Clear error" in clear.group(0)
    response = web.post(clear.group(1), {"next": "detail"})
    model = AIModel.objects.get(pk="tiny")
    assert (response.status_code, response["Location"]) == (302, "/models/tiny/")
    assert (model.status, model.error) == ("ready", "")
    assert 'data-phase="ready"' in web.get("/models/tiny/").content.decode()


def test_the_serve_form_says_what_the_model_needs_and_what_the_node_has(web, tiny, settings):
    settings.LLAMA_DEFAULT_CTX = 2048
    settings.LLAMA_MEMORY_LIMIT = 4 * 1024 ** 3
    page = web.get("/models/tiny/").content.decode()
    # The tiny file names no layers or heads: 32 layers of 4096 wide in f16, 512 KiB per token, plus the file.
    assert (f"Needs about 1.3 GB of memory with a context of 2,048 tokens; node {settings.NODE_NAME} "
            "has 4.3 GB available.") in page
    assert 'data-per-token="524288"' in page and "memory-over" not in page

    settings.LLAMA_MEMORY_LIMIT = 1024 ** 3
    page = web.get("/models/tiny/").content.decode()
    assert "memory-estimate memory-over" in page
    assert f"but node {settings.NODE_NAME} has only 1.1 GB available: use a smaller context" in page

    # A context typed in the form (sent back with an error) is the one estimated.
    page = web.post("/models/tiny/serve/", {"context_size": "512", "port": "80", "next": "detail"}).content.decode()
    assert "with a context of 512 tokens; node" in page and "memory-over" not in page

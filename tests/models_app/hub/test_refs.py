from __future__ import annotations

import pytest

from aiportal.errors import ApplicationError
from models_app.hub.refs import HubRef, hub_ref_parse

R = "TheBloke/Llama-2-7B-Chat-GGUF"
F = "llama-2-7b-chat.Q4_K_M.gguf"


@pytest.mark.parametrize(("text", "expected"), [
    (f"https://huggingface.co/{R}", HubRef(R)),
    (f"https://huggingface.co/{R}/", HubRef(R)),
    (f"https://huggingface.co/{R}/tree/main", HubRef(R, "main")),
    (f"https://huggingface.co/{R}/blob/main/{F}", HubRef(R, "main", F)),
    (f"https://huggingface.co/{R}/resolve/main/{F}", HubRef(R, "main", F)),
    (f"https://huggingface.co/{R}/resolve/main/{F}?download=true", HubRef(R, "main", F)),
    (f"https://huggingface.co/{R}/resolve/0123abc/Q4/{F}", HubRef(R, "0123abc", f"Q4/{F}")),
    (f"https://hf.co/{R}", HubRef(R)),
    (f"hf.co/{R}/blob/main/{F}", HubRef(R, "main", F)),
    (f"huggingface.co/{R}", HubRef(R)),
    (f"http://www.huggingface.co/{R}", HubRef(R)),
    (R, HubRef(R)),
    (f"  {R}  ", HubRef(R)),
    (f"http://127.0.0.1:9999/{R}/blob/main/{F}", HubRef(R, "main", F)),
    (f"{R}:Q4_K_M", HubRef(R, quant="Q4_K_M")),
    (f"{R}:q8_0", HubRef(R, quant="Q8_0")),
    (f"hf.co/{R}:IQ3_M", HubRef(R, quant="IQ3_M")),
    (f"https://huggingface.co/{R}:Q4_1", HubRef(R, quant="Q4_1")),
    (f"hf.co/{R}:latest", HubRef(R)),
])
def test_it_accepts_every_url_form(text, expected):
    assert hub_ref_parse(text, endpoint="http://127.0.0.1:9999") == expected


@pytest.mark.parametrize("text", [
    "", "https://example.com/TheBloke/Llama", "https://huggingface.co/TheBloke", "TheBloke",
    "https://huggingface.co/datasets/squad/plain_text", "https://huggingface.co/spaces/a/b",
    "https://huggingface.co/a/b/commits/main", "https://huggingface.co/a/b/blob/main",
    "ftp://huggingface.co/a/b", "a/b:", "a/b:Q4 K", "a/b:Q4/x", f"{R}:Q4/blob/main/{F}", "a/b..c", "-a/b", "a/b c", "example.com/a/b", "magnet:?xt=urn:btih:abc",
])
def test_it_rejects_what_is_not_a_hub_model_url(text):
    with pytest.raises(ApplicationError) as caught:
        hub_ref_parse(text)
    assert caught.value.code == "invalid_url"
    assert caught.value.status == 400


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../b.gguf", "/abs.gguf", "a\\b.gguf", "a//b.gguf", "."])
def test_it_rejects_file_names_that_leave_the_repo(name):
    with pytest.raises(ApplicationError) as caught:
        hub_ref_parse(R, file_name=name)
    assert (caught.value.code, caught.value.status) == ("invalid_file_name", 400)


def test_it_lets_file_name_pick_a_file():
    assert hub_ref_parse(f"https://huggingface.co/{R}/tree/main", file_name=F) == HubRef(R, "main", F)

"""Parse what a person pastes (a Hub URL in any of its forms, or `owner/repo`) into a repo reference."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from aiportal.errors import ApplicationError

HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_QUANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_NOT_MODELS = {"datasets", "spaces", "docs", "blog", "api", "collections", "papers", "models"}


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None
    file_name: str | None = None
    quant: str | None = None  # `owner/repo:Q4_K_M` picks that quantization (as Ollama and `llama-server -hf` do)


def hub_ref_parse(text: str, *, endpoint: str = "", file_name: str | None = None) -> HubRef:
    """`https://huggingface.co/o/r[/tree|blob|resolve/<rev>[/<file>]]`, `hf.co/…`, a mirror's URL, or `o/r`;
    the repo may end in `:<quant>`."""
    text = (text or "").strip()
    if not text:
        raise _invalid("Give a Hugging Face model URL or owner/repo.")
    segments = _path_segments(text, endpoint)
    ref = _from_segments(segments, text)
    if file_name:
        ref = HubRef(ref.repo_id, ref.revision, file_name_check(file_name))
    return ref


def hub_ref_names_file(text: str, *, endpoint: str = "") -> bool:
    """The reference picks its file itself (a file's URL, or `owner/repo:Q4_K_M`): no one need be asked which;
    False for one that does not parse (the download then says what is wrong with it)."""
    try:
        ref = hub_ref_parse(text, endpoint=endpoint)
    except ApplicationError:
        return False
    return ref.file_name is not None or ref.quant is not None


def file_name_check(name: str) -> str:
    """A repo-relative file path that cannot leave the model folder."""
    cleaned = name.strip()
    parts = cleaned.split("/")
    if (not cleaned or cleaned.startswith("/") or "\\" in cleaned or "\x00" in cleaned
            or any(part in {"", ".", ".."} for part in parts)):
        raise ApplicationError(f"{name!r} is not a file name inside a repository.", code="invalid_file_name")
    return cleaned


def _path_segments(text: str, endpoint: str) -> list[str]:
    hosts = set(HUB_HOSTS)
    mirror = urlsplit(endpoint) if endpoint else None
    if mirror is not None and mirror.netloc:
        hosts.add(mirror.netloc.lower())
    candidate = text if "://" in text else f"https://{text}"
    url = urlsplit(candidate)
    if url.scheme in {"http", "https"} and url.netloc.lower() in hosts:
        path = url.path
        if mirror is not None and url.netloc.lower() == mirror.netloc.lower() and mirror.path.strip("/"):
            path = path.removeprefix(mirror.path.rstrip("/"))
        return [unquote(part) for part in path.split("/") if part]
    if "://" not in text and not _looks_like_host(text.split("/")[0]):
        return [part for part in text.split("/") if part]
    raise _invalid(f"{text!r} is not a Hugging Face URL (expected https://huggingface.co/<owner>/<repo>).")


def _looks_like_host(first: str) -> bool:
    # Hub user and organisation names hold no dots or colons; host names do.
    return "." in first or ":" in first


def _from_segments(segments: list[str], text: str) -> HubRef:
    if len(segments) < 2:
        raise _invalid(f"{text!r} does not name a repository (expected <owner>/<repo>).")
    owner, name, rest = segments[0], segments[1], segments[2:]
    name, quant = _quant_split(name, text, alone=not rest)
    if owner in _NOT_MODELS:
        raise _invalid(f"{text!r} is not a model repository; only models can be downloaded.")
    for part in (owner, name):
        if not _NAME.match(part) or ".." in part or "--" in part:
            raise _invalid(f"{part!r} in {text!r} is not a valid Hugging Face repository name.")
    repo_id = f"{owner}/{name}"
    if not rest:
        return HubRef(repo_id, quant=quant)
    kind, tail = rest[0], rest[1:]
    if kind == "tree" and tail:
        return HubRef(repo_id, tail[0])
    if kind in {"blob", "resolve"} and len(tail) >= 2:
        return HubRef(repo_id, tail[0], file_name_check("/".join(tail[1:])))
    raise _invalid(f"{text!r} is not a repository, tree, blob or resolve URL of the Hub.")


def _quant_split(name: str, text: str, *, alone: bool) -> tuple[str, str | None]:
    if ":" not in name:
        return name, None
    name, _, quant = name.partition(":")
    if not alone or not _QUANT.match(quant):
        raise _invalid(f"{text!r}: a quantization goes after the repository, as in owner/repo:Q4_K_M.")
    return name, None if quant.lower() == "latest" else quant.upper()


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_url")

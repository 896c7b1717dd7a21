"""Adapter over `huggingface_hub`, the only module that imports it: repo metadata, search, file transfer.

Plain dataclasses go out; library exceptions come back as `aiportal.errors` types (metadata) or
`TransferError` (downloads), so nothing above this module knows the library.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
from django.conf import settings
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub import file_download as hf_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers

from aiportal.errors import ApplicationError, NotFound, Unavailable, Upstream
from models_app.services import PARTIAL_SUFFIX
from torrents_app import creation

log = logging.getLogger(__name__)
# The library reads the body in 10 MiB chunks; 1 MiB keeps progress flowing on slow links.
PROGRESS_CHUNK = 1024 * 1024
_INFO_TTL = 30.0
_info_cache: dict[tuple, tuple[float, HubRepo]] = {}


@dataclass(frozen=True)
class HubFile:
    name: str
    size: int
    sha256: str  # the LFS sha256; empty for small files kept in git


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    commit: str
    gated: bool
    files: tuple[HubFile, ...]


class TransferError(Exception):
    """A download that did not finish; `permanent` ones are not worth retrying."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def _api() -> HfApi:
    return HfApi(endpoint=settings.HF_ENDPOINT, token=settings.HF_TOKEN)


def hub_repo(*, repo_id: str, revision: str | None) -> HubRepo:
    """The repo's files (sizes, LFS sha256) at `revision`, pinned to the commit the Hub reports."""
    key = (settings.HF_ENDPOINT, settings.HF_TOKEN, repo_id, revision)
    cached = _info_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
        return cached[1]
    with _hub_errors(repo_id):
        info = _api().model_info(repo_id, revision=revision, files_metadata=True)
    files = tuple(
        HubFile(name=s.rfilename, size=int(s.size or (s.lfs.size if s.lfs else 0)), sha256=s.lfs.sha256 if s.lfs else "")
        for s in info.siblings or []
    )
    repo = HubRepo(repo_id=info.id or repo_id, commit=info.sha or "", gated=bool(info.gated), files=files)
    _info_cache[key] = (time.monotonic(), repo)
    return repo


def hub_search_gguf(*, query: str, limit: int = 5) -> list[str]:
    """Ids of GGUF repos matching `query`, most downloaded first; empty when the search fails."""
    try:
        found = _api().list_models(search=query, filter="gguf", sort="downloads", limit=limit)
        return [model.id for model in found]
    except (HfHubHTTPError, httpx2.HTTPError, OSError, ValueError):
        return []


def hub_file_url(*, repo_id: str, name: str, commit: str) -> str:
    return hf_hub_url(repo_id, name, revision=commit, endpoint=settings.HF_ENDPOINT)


def hub_check_access(*, repo_id: str, name: str, commit: str) -> None:
    """A HEAD on the file: raises 403 `gated_repo` when this token may not download it."""
    url = hub_file_url(repo_id=repo_id, name=name, commit=commit)
    with _hub_errors(repo_id):
        get_hf_file_metadata(url, token=settings.HF_TOKEN, endpoint=settings.HF_ENDPOINT)


def hub_download(*, repo_id: str, name: str, commit: str, dest: Path, progress: type,
                 piece_size: int = 0) -> creation.FileHashes | None:
    """Fetch one file into `dest`, resuming from `dest` + `.incomplete` when a previous try left one. With a
    `piece_size`, the bytes are hashed as they arrive and their hashes returned (None when they could not be)."""
    url = hub_file_url(repo_id=repo_id, name=name, commit=commit)
    partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        meta = get_hf_file_metadata(url, token=settings.HF_TOKEN, endpoint=settings.HF_ENDPOINT)
        headers = build_hf_headers(token=settings.HF_TOKEN)
        if not hf_download._is_same_or_hub_host(url, meta.location):
            headers.pop("authorization", None)  # a signed CDN URL must not receive the Hub token
        done = partial.stat().st_size if partial.exists() else 0
        if meta.size is not None and done > meta.size:
            partial.unlink()
            done = 0
        with open(partial, "ab") as fh, _small_chunks():
            sink = _Hashing(fh, partial, piece_size) if piece_size else None
            try:
                hf_download.http_get(meta.location, sink or fh, resume_size=done, headers=headers,
                                     expected_size=meta.size, displayed_filename=name, tqdm_class=progress)
            finally:
                hashes = sink.finish() if sink is not None else None
    except (GatedRepoError, RepositoryNotFoundError, RemoteEntryNotFoundError) as exc:
        raise TransferError(_first_line(exc), permanent=True) from None
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        raise TransferError(_first_line(exc)) from None
    os.replace(partial, dest)
    return hashes


class _Hashing:
    """The partial file as huggingface_hub writes it, each chunk also hashed (after what a previous try left)
    by a thread of its own: hashlib lets go of the GIL, so the hashing runs beside the transfer instead of
    slowing it. A rewind (a server that ignored the Range) stops the hashing: the check then reads the file."""

    def __init__(self, fh, partial: Path, piece_size: int):
        self.fh, self.piece_size, self.rewound = fh, piece_size, False
        self.chunks: queue.Queue = queue.Queue(maxsize=32)
        self.result: creation.FileHashes | None = None
        self.thread = threading.Thread(target=self._hash, args=(partial, partial.stat().st_size), daemon=True,
                                       name="hub-download-hashing")
        self.thread.start()

    def _hash(self, partial: Path, kept: int) -> None:
        hasher = creation.Hasher(self.piece_size)
        try:
            with open(partial, "rb") as fh:
                while kept > 0 and (chunk := fh.read(min(self.piece_size, kept))):
                    hasher.update(chunk)
                    kept -= len(chunk)
            while (chunk := self.chunks.get()) is not None:
                hasher.update(chunk)
            self.result = hasher.result()
        except Exception:  # the thread's end: the download goes on, and the check reads the file
            log.exception("hashing %s as it downloads failed; it is checked once whole", partial)
            while self.chunks.get() is not None:
                pass

    def write(self, data: bytes) -> int:
        written = self.fh.write(data)
        self.chunks.put(data)
        return written

    def tell(self) -> int:
        return self.fh.tell()

    def seek(self, *args) -> int:
        self.rewound = True
        return self.fh.seek(*args)

    def truncate(self, *args) -> int:
        self.rewound = True
        return self.fh.truncate(*args)

    def finish(self) -> creation.FileHashes | None:
        """The hashes of the bytes written (None after a rewind); ends the thread, also after a failure."""
        self.chunks.put(None)
        self.thread.join()
        return None if self.rewound else self.result


def progress_class(on_bytes: Callable[[int], None]) -> type:
    """A `tqdm_class` for huggingface_hub that reports every chunk to `on_bytes`."""

    class Progress:
        def __init__(self, *args, **kwargs):
            self.n = kwargs.get("initial", 0)

        def update(self, n: int = 1) -> None:
            self.n += n
            on_bytes(n)

        def __enter__(self) -> Progress:
            return self

        def __exit__(self, *exc) -> None:
            return None

        def close(self) -> None:
            return None

    return Progress


@contextlib.contextmanager
def _small_chunks() -> Iterator[None]:
    previous = constants.DOWNLOAD_CHUNK_SIZE
    constants.DOWNLOAD_CHUNK_SIZE = PROGRESS_CHUNK
    try:
        yield
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = previous


@contextlib.contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    try:
        yield
    except GatedRepoError:
        raise ApplicationError(gated_message(repo_id), code="gated_repo", status=403) from None
    except HFValidationError as exc:
        raise ApplicationError(f"{repo_id!r} is not a valid repository: {exc}", code="invalid_url") from None
    except RevisionNotFoundError:
        raise NotFound(f"{repo_id} has no such revision on the Hub.", code="revision_not_found") from None
    except RepositoryNotFoundError:
        raise NotFound(f"No model repository {repo_id!r} on the Hub (or it is private and HF_TOKEN cannot see it).",
                       code="repo_not_found") from None
    except HfHubHTTPError as exc:
        raise Upstream(f"The Hub answered with an error: {_first_line(exc)}", code="hub_error") from None
    except (httpx2.HTTPError, OSError) as exc:
        raise Unavailable(f"The Hub ({settings.HF_ENDPOINT}) is unreachable: {exc}", code="hub_unreachable") from None


def gated_message(repo_id: str) -> str:
    how = "set HF_TOKEN to a token of an account that has been granted access" if not settings.HF_TOKEN else \
        "the account of HF_TOKEN has not been granted access yet"
    return (f"{repo_id} is a gated model: accept its conditions at {settings.HF_ENDPOINT}/{repo_id} "
            f"while logged in, then {how}.")


def _first_line(exc: Exception) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text[:300] or type(exc).__name__

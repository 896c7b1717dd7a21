"""A small Hugging Face Hub on 127.0.0.1, speaking what huggingface_hub 2.4.0 calls.

Endpoints: model info (`/api/models/<repo>[/revision/<rev>]`, `?blobs=true` adds sizes and LFS
sha256), the tree API, search (`/api/models?search=&filter=`), and `resolve/<rev>/<file>`, which
answers small files itself and redirects LFS files (302) to a second host, 127.0.0.2, like the
real Hub does with its CDN. Both hosts honour `Range`. Flags switch on failure modes (slow,
cut connections, outage, wrong checksum) and the hub counts the body bytes it served.

Standalone: `python tests/fakes/fake_hub.py --large model.gguf` prints its endpoint.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 256 * 1024
UPLINK_BURST = 0.1
LFS_THRESHOLD = 10 * 1024
GOOD_TOKEN = "hf_fake_good_token"


@dataclass
class FakeFile:
    name: str
    size: int
    sha256: str
    oid: str
    path: Path | None = None
    data: bytes | None = None
    advertised_sha256: str = ""

    @property
    def lfs(self) -> bool:
        return self.size > LFS_THRESHOLD or self.name.endswith(".gguf")

    def read(self, start: int, end: int):
        """Yield the bytes [start, end) in chunks."""
        if self.data is not None:
            for pos in range(start, end, CHUNK):
                yield self.data[pos:min(end, pos + CHUNK)]
            return
        with open(self.path, "rb") as fh:
            fh.seek(start)
            pos = start
            while pos < end:
                chunk = fh.read(min(CHUNK, end - pos))
                if not chunk:
                    return
                pos += len(chunk)
                yield chunk


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    sha: str
    gated: bool = False
    private: bool = False
    tags: list[str] = field(default_factory=list)


def _file_of(name: str, content: bytes | Path) -> FakeFile:
    if isinstance(content, Path):
        digest, size = _sha256_path(content), content.stat().st_size
        return FakeFile(name=name, size=size, sha256=digest, oid=hashlib.sha1(digest.encode()).hexdigest(), path=content)
    digest = hashlib.sha256(content).hexdigest()
    return FakeFile(name=name, size=len(content), sha256=digest, oid=hashlib.sha1(content).hexdigest(), data=content)


_SHA_CACHE: dict[tuple[str, int, float], str] = {}


def _sha256_path(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


class FakeHub:
    """Two HTTP servers (the Hub on 127.0.0.1, its "CDN" on 127.0.0.2) sharing one state."""

    def __init__(self, host: str = "127.0.0.1", cdn_host: str = "127.0.0.2", port: int = 0):
        self.repos: dict[str, FakeRepo] = {}
        self.lock = threading.Lock()
        self.slow_bps = 0  # throttle every body to this many bytes per second
        self.total_bps = 0  # throttle all bodies together to this many bytes per second (the Hub's uplink)
        self._uplink_free_at = 0.0
        self.cut_after = 0  # close each body after this many bytes (a flaky connection)
        self.outage_after = 0  # after this many body bytes in total, every download fails (503)
        self.down = False
        self.fail_next = 0  # the next this many file downloads answer 503, then the Hub recovers
        self.ignore_range = False  # answer 200 with the whole body to a Range (some CDNs do)
        self.bytes_served = 0
        self.streaming = 0  # bodies being sent right now
        self.ranges: list[str] = []
        self.bodies: list[tuple[str, str, int]] = []  # (user agent, Range, bytes sent) of each body, for failures
        self.api = _server(self, host, port)
        self.cdn = _server(self, cdn_host, 0)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.api, self.cdn)]

    @property
    def url(self) -> str:
        host, port = self.api.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        host, port = self.cdn.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.api, self.cdn):
            server.shutdown()
            server.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path], *, gated: bool = False,
                 private: bool = False, tags: list[str] | None = None, wrong_sha256: set[str] = frozenset()) -> str:
        entries = {name: _file_of(name, content) for name, content in files.items()}
        for name in wrong_sha256:
            entries[name].advertised_sha256 = hashlib.sha256(b"not these bytes").hexdigest()
        seed = repo_id + "".join(f"{f.name}:{f.sha256}" for f in entries.values())
        sha = hashlib.sha1(seed.encode()).hexdigest()
        has_gguf = any(name.endswith(".gguf") for name in entries)
        self.repos[repo_id] = FakeRepo(repo_id, entries, sha, gated, private,
                                       (tags or []) + (["gguf"] if has_gguf else []))
        return sha

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_served = 0
            self.ranges.clear()
            self.bodies.clear()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no body is being sent (a client that died is noticed at the next write)."""
        deadline = time.monotonic() + timeout
        while self.streaming and time.monotonic() < deadline:
            time.sleep(0.02)

    def count(self, n: int) -> bool:
        """Add served bytes; False once an outage has begun."""
        with self.lock:
            self.bytes_served += n
            return not (self.outage_after and self.bytes_served >= self.outage_after)

    def uplink(self, n: int) -> None:
        """Wait for `n` bytes' turn on the shared uplink (total_bps), first come first served."""
        if not self.total_bps:
            return
        with self.lock:
            now = time.monotonic()
            # A token bucket UPLINK_BURST seconds deep: a sender woken late (a busy CPU) catches up as a link
            # with a buffer does, instead of losing that time for good (it lost 4% alone, 16% on a busy machine).
            self._uplink_free_at = max(now - UPLINK_BURST, self._uplink_free_at) + n / self.total_bps
            until = self._uplink_free_at
        time.sleep(max(0.0, until - now))

    def repo(self, repo_id: str) -> FakeRepo | None:
        return self.repos.get(repo_id)

    def blob(self, sha256: str) -> FakeFile | None:
        for repo in self.repos.values():
            for entry in repo.files.values():
                if entry.sha256 == sha256:
                    return entry
        return None


def _server(hub: FakeHub, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")


class Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        return

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        if path.startswith("/lfs/"):
            return self._cdn(path.removeprefix("/lfs/"), head)
        if path == "/api/models":
            return self._search(query)
        for pattern, view in ((_TREE, self._tree), (_INFO, self._info), (_RESOLVE, self._resolve)):
            match = pattern.match(path)
            if match:
                return view(match, query, head)
        self._error(404, "Not found", code="")

    # API -----------------------------------------------------------------------------------------
    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {GOOD_TOKEN}"

    def _visible_repo(self, repo_id: str, rev: str | None) -> FakeRepo | None:
        repo = self.hub.repo(repo_id)
        if repo is None or (repo.private and not self._authorized()):
            self._error(401, "Repository not found", code="RepoNotFound")
            return None
        if rev not in (None, "main", repo.sha):
            self._error(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
            return None
        return repo

    def _info(self, match, query, head) -> None:
        repo = self._visible_repo(match["repo"], match["rev"])
        if repo is None:
            return
        blobs = query.get("blobs", [""])[0].lower() == "true"
        siblings = [self._sibling(f, blobs) for f in repo.files.values()]
        body = {"_id": repo.sha[:24], "id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.sha,
                "private": repo.private, "gated": "manual" if repo.gated else False, "disabled": False,
                "tags": repo.tags, "downloads": 10, "likes": 1, "siblings": siblings,
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z"}
        self._json(body)

    @staticmethod
    def _sibling(entry: FakeFile, blobs: bool) -> dict:
        sibling = {"rfilename": entry.name}
        if blobs:
            sibling.update(size=entry.size, blobId=entry.oid)
            if entry.lfs:
                sibling["lfs"] = {"sha256": entry.advertised_sha256 or entry.sha256, "size": entry.size,
                                  "pointerSize": 134}
        return sibling

    def _tree(self, match, query, head) -> None:
        repo = self._visible_repo(match["repo"], match["rev"])
        if repo is None:
            return
        prefix = (match["path"] or "").strip("/")
        items = []
        for entry in repo.files.values():
            if prefix and not entry.name.startswith(prefix + "/"):
                continue
            item = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.name}
            if entry.lfs:
                item["lfs"] = {"oid": entry.advertised_sha256 or entry.sha256, "size": entry.size, "pointerSize": 134}
            items.append(item)
        self._json(items)

    def _search(self, query) -> None:
        words = query.get("search", [""])[0].lower()
        filters = set(query.get("filter", []))
        limit = int(query.get("limit", ["1000"])[0])
        found = [
            {"_id": r.sha[:24], "id": r.repo_id, "modelId": r.repo_id, "likes": 1, "downloads": 10,
             "tags": r.tags, "private": r.private, "createdAt": "2025-01-01T00:00:00.000Z"}
            for r in self.hub.repos.values()
            if words in r.repo_id.lower() and filters <= set(r.tags) and not r.private
        ]
        self._json(found[:limit])

    # Files ---------------------------------------------------------------------------------------
    def _resolve(self, match, query, head) -> None:
        repo = self._visible_repo(match["repo"], match["rev"])
        if repo is None:
            return
        entry = repo.files.get(match["path"])
        if entry is None:
            return self._error(404, "Entry not found", code="EntryNotFound", commit=repo.sha)
        if repo.gated and not self._authorized():
            return self._error(401, f"Access to model {repo.repo_id} is restricted. You must have access to it and "
                                    "be authenticated to access it. Please log in.", code="GatedRepo")
        if self.hub.down:
            return self._error(503, "Service unavailable", code="")
        headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"ETag": f'"{entry.oid}"', "X-Linked-Etag": f'"{entry.advertised_sha256 or entry.sha256}"',
                            "X-Linked-Size": str(entry.size), "Location": f"{self.hub.cdn_url}/lfs/{entry.sha256}",
                            "Content-Length": "0"})
            return self._send(302, headers)
        headers["ETag"] = f'"{entry.oid}"'
        self._body(entry, headers, head)

    def _cdn(self, sha256: str, head: bool) -> None:
        entry = self.hub.blob(sha256)
        if entry is None:
            return self._error(404, "NoSuchKey", code="")
        if self.hub.down or (self.hub.outage_after and self.hub.bytes_served >= self.hub.outage_after):
            return self._error(503, "Slow Down", code="")
        if not head and self._take_failure():
            return self._error(503, "Slow Down", code="")
        self._body(entry, {"ETag": f'"{entry.sha256}"', "Accept-Ranges": "bytes"}, head)

    def _take_failure(self) -> bool:
        with self.hub.lock:
            if self.hub.fail_next <= 0:
                return False
            self.hub.fail_next -= 1
            return True

    def _body(self, entry: FakeFile, headers: dict, head: bool) -> None:
        start, end, status = 0, entry.size, 200
        wanted = None if self.hub.ignore_range else self.headers.get("Range")
        if wanted:
            found = re.match(r"bytes=(\d+)-(\d*)$", wanted.strip())
            if found is None or int(found[1]) >= max(entry.size, 1):
                return self._send(416, {"Content-Range": f"bytes */{entry.size}", "Content-Length": "0"})
            start = int(found[1])
            end = min(entry.size, int(found[2]) + 1) if found[2] else entry.size
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
            if not head:
                with self.hub.lock:
                    self.hub.ranges.append(wanted)
        headers["Content-Length"] = str(end - start)
        headers["Content-Type"] = "application/octet-stream"
        self._send(status, headers, close=False)
        if not head:
            with self.hub.lock:
                self.hub.streaming += 1
            sent = [0]
            try:
                self._stream(entry, start, end, sent)
            finally:
                with self.hub.lock:
                    self.hub.streaming -= 1
                    self.hub.bodies.append((self.headers.get("User-Agent", "").split(";")[0][:40],
                                            wanted or "", sent[0]))

    def _stream(self, entry: FakeFile, start: int, end: int, counted: list[int]) -> None:
        sent, began = 0, time.monotonic()
        for chunk in entry.read(start, end):
            if self.hub.cut_after and sent + len(chunk) > self.hub.cut_after:
                chunk = chunk[: self.hub.cut_after - sent]
            self.hub.uplink(len(chunk))
            # Counted before it is written: a client that has read the whole body must find it counted.
            alive = self.hub.count(len(chunk))
            try:
                self.wfile.write(chunk)
            except OSError:
                self.hub.count(-len(chunk))
                return
            sent += len(chunk)
            counted[0] = sent
            if not alive or (self.hub.cut_after and sent >= self.hub.cut_after):
                self.close_connection = True
                return
            if self.hub.slow_bps:
                delay = sent / self.hub.slow_bps - (time.monotonic() - began)
                if delay > 0:
                    time.sleep(delay)

    # Plumbing ------------------------------------------------------------------------------------
    def _json(self, body) -> None:
        data = json.dumps(body).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(data))})
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, *, code: str, commit: str = "") -> None:
        data = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers)
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send(self, status: int, headers: dict, close: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()


def resolve_url(hub: FakeHub, repo_id: str, name: str, rev: str = "main") -> str:
    return f"{hub.url}/{repo_id}/resolve/{rev}/{quote(name)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, required=True, help="a GGUF file to serve as the large file")
    parser.add_argument("--repo", default="fake-org/SmolLM2-135M-Instruct-GGUF")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    hub = FakeHub(port=args.port)
    hub.add_repo(args.repo, {args.large.name: args.large, "README.md": b"# A fake repo\n"})
    hub.start()
    print(f"HF_ENDPOINT={hub.url}  repo {args.repo}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()


def tiny_gguf(*, name: str = "tiny", padding: int = 0, split: tuple[int, int] | None = None) -> bytes:
    """A small but valid GGUF file (one tensor), optionally a split part, made with the `gguf` writer."""
    import tempfile

    import numpy as np
    from gguf import GGUFWriter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.gguf"
        writer = GGUFWriter(path, "llama")
        writer.add_name(name)
        writer.add_context_length(256)
        writer.add_file_type(2)
        if split is not None:
            writer.add_uint16("split.no", split[0] - 1)
            writer.add_uint16("split.count", split[1])
            writer.add_int32("split.tensors.count", split[1])
        writer.add_tensor(f"blk.{split[0] if split else 0}.weight",
                          np.arange(64 + padding // 4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()

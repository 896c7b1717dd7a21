"""Deterministic .torrent files (SPEC §8), hashed in one read of the content.

One pass over each file yields its full sha256 (checked against the Hub), the v1 SHA-1 piece hashes
and the v2 (BEP 52) merkle piece layer, so verifying a download and creating its torrent read the
file once. The bindings of libtorrent 2.1 cannot take v2 hashes (`set_hash2` is not exposed), so the
metadata is assembled here exactly as libtorrent's `create_torrent` lays it out (name = file name,
files in canonical order, pad files in hybrid torrents, no creation date, no attributes) and
libtorrent parses the result to read the info-hashes. The tests compare it byte for byte with
libtorrent's own `set_piece_hashes` output.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import libtorrent as lt

BLOCK = 16 * 1024
FORMATS = ("hybrid", "v1", "v2")
_ZERO = bytes(32)
_cache: dict[tuple, FileHashes] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class FileHashes:
    sha256: str
    v1_pieces: bytes  # SHA-1 of each piece of this file, zero-padded to a piece boundary
    v1_tail: bytes  # SHA-1 of the last piece as it is (a single-file torrent has no padding)
    v2_layer: bytes  # the file's piece layer (empty when the file fits in one piece)
    v2_root: bytes


@dataclass(frozen=True)
class CreatedTorrent:
    data: bytes
    name: str
    size: int
    info_hash: str
    info_hash_v2: str
    magnet: str


# libtorrent 2.1 fetches a hybrid or v2 torrent by magnet 4-5 times slower once it has 512 pieces or more
# (it asks its peers for the piece hashes, BEP 52). Measured with a bare libtorrent pair on loopback,
# no portal code, 1 MiB pieces: 511 pieces at 216 MiB/s, 512 at 46 MiB/s (v2 alone: 57); v1 torrents,
# whose hashes come in the metadata, are not affected. So pieces grow until there are fewer than 512,
# up to 32 MiB (files up to ~16 GiB); bigger files have more pieces and the slower magnet start.
MAX_PIECES = 511
MAX_PIECE = 32 * 1024 * 1024


def piece_size_for(total: int) -> int:
    """Depends on the size only: 256 KiB, doubled until there are at most MAX_PIECES (MAX_PIECE at most)."""
    piece = 256 * 1024
    while -(-total // piece) > MAX_PIECES and piece < MAX_PIECE:
        piece *= 2
    return piece


def file_hashes(path: Path, *, piece_size: int) -> FileHashes:
    """sha256 and torrent piece hashes of one file in a single read; remembered for this process."""
    key = _cache_key(path, piece_size)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    hasher = Hasher(piece_size)
    with open(path, "rb", buffering=0) as fh:
        while piece := fh.read(piece_size):
            hasher.update(piece)
    hashes = hasher.result()
    with _cache_lock:
        _cache[key] = hashes
    return hashes


def file_hashes_known(path: Path, *, piece_size: int, hashes: FileHashes) -> None:
    """Remember the hashes of a file whose bytes were hashed as they were written (`Hasher`): the next
    `file_hashes` of it, as long as it is unchanged, reads nothing."""
    with _cache_lock:
        _cache[_cache_key(path, piece_size)] = hashes


def _cache_key(path: Path, piece_size: int) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, piece_size


class Hasher:
    """`FileHashes` of bytes given in order, in any chunks (one file, from its first byte)."""

    def __init__(self, piece_size: int):
        self.piece_size, self.full, self.size = piece_size, hashlib.sha256(), 0
        self.v1: list[bytes] = []
        self.layer: list[list[bytes]] = []
        self.tail, self.pending = b"", bytearray()

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        if self.pending:
            need = self.piece_size - len(self.pending)
            self.pending += view[:need]
            view = view[need:]
            if len(self.pending) < self.piece_size:
                return
            self._piece(bytes(self.pending))
            self.pending.clear()
        whole = len(view) - len(view) % self.piece_size
        for at in range(0, whole, self.piece_size):
            self._piece(view[at:at + self.piece_size])  # no copy: hashlib reads the caller's buffer
        self.pending += view[whole:]

    def _piece(self, piece) -> None:
        self.full.update(piece)
        self.size += len(piece)
        self.tail = hashlib.sha1(piece).digest()
        whole = len(piece) == self.piece_size
        self.v1.append(self.tail if whole else hashlib.sha1(bytes(piece) + bytes(self.piece_size - len(piece))).digest())
        self.layer.append([hashlib.sha256(piece[pos:pos + BLOCK]).digest() for pos in range(0, len(piece), BLOCK)])

    def result(self) -> FileHashes:
        if self.pending:
            self._piece(bytes(self.pending))
            self.pending.clear()
        blocks_per_piece = self.piece_size // BLOCK
        if self.size <= self.piece_size:
            leaves = self.layer[0] if self.layer else []
            root = _merkle_root(leaves, _next_pow2(len(leaves)), _ZERO) if leaves else b""
            return FileHashes(self.full.hexdigest(), b"".join(self.v1), self.tail, b"", root)
        pieces = [_merkle_root(leaves, blocks_per_piece, _ZERO) for leaves in self.layer]
        return FileHashes(self.full.hexdigest(), b"".join(self.v1), self.tail, b"".join(pieces),
                          _layer_root(pieces, blocks_per_piece))


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _layer_root(pieces: list[bytes], blocks_per_piece: int) -> bytes:
    """A file's pieces root from its piece layer (padded with the root of an all-zero piece)."""
    return _merkle_root(pieces, _next_pow2(len(pieces)), _merkle_root([], blocks_per_piece, _ZERO))


def _merkle_root(nodes: list[bytes], width: int, pad: bytes) -> bytes:
    level = nodes + [pad] * (width - len(nodes))
    while len(level) > 1:
        level = [hashlib.sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def torrent_create(*, content: Path, fmt: str = "hybrid", web_seed: str = "", piece: int = 0) -> CreatedTorrent:
    """The torrent of a file, or of a folder's files (for split models), in `fmt` (hybrid, v1 or v2); its pieces
    are `piece_size_for` its size unless `piece` says otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"torrent format {fmt!r} is not one of {FORMATS}")
    files = _content_files(content)
    total = sum(size for _, _, size in files)
    piece = piece or piece_size_for(total)
    hashes = {rel: file_hashes(path, piece_size=piece) for rel, path, _ in files}
    single = content.is_file()
    if single:
        only = hashes[files[0][0]]
        pieces = only.v1_pieces[:-20] + only.v1_tail if only.v1_pieces else b""
    elif fmt == "v1":
        pieces = _v1_stream_pieces([path for _, path, _ in files], piece)
    else:
        pieces = b"".join(hashes[rel].v1_pieces for rel, _, _ in files)
    info = _info_dict(content.name, files, hashes, piece, pieces, fmt, single=single)
    top: dict = {b"info": info}
    if fmt != "v1":
        top[b"piece layers"] = {h.v2_root: h.v2_layer for h in hashes.values() if h.v2_layer}
    if web_seed:
        top[b"url-list"] = web_seed.encode()
    data = lt.bencode(top)
    ids = lt.torrent_info(data).info_hashes()
    v1 = str(ids.v1) if ids.has_v1() else ""
    v2 = str(ids.v2) if ids.has_v2() else ""
    return CreatedTorrent(data, content.name, total, v1, v2, magnet_uri(v1=v1, v2=v2, name=content.name,
                                                                        size=total, web_seed=web_seed))


def _content_files(content: Path) -> list[tuple[tuple[str, ...], Path, int]]:
    if content.is_file():
        return [((content.name,), content, content.stat().st_size)]
    found = [p for p in content.rglob("*") if p.is_file() and not p.name.startswith(".")]
    rels = sorted((p.relative_to(content).parts, p) for p in found)
    return [(rel, path, path.stat().st_size) for rel, path in rels]


def _info_dict(name: str, files: list, hashes: dict, piece: int, pieces: bytes, fmt: str, *, single: bool) -> dict:
    info: dict = {b"name": name.encode(), b"piece length": piece}
    if fmt != "v2":
        info[b"pieces"] = pieces
        if single:
            info[b"length"] = files[0][2]
        else:
            info[b"files"] = _v1_files(files, piece, pad=fmt == "hybrid")
    if fmt != "v1":
        info[b"meta version"] = 2
        info[b"file tree"] = _file_tree([(([name] if single else list(rel)), size, hashes[rel]) for rel, _, size in files])
    return info


def _v1_files(files: list, piece: int, *, pad: bool) -> list[dict]:
    entries = []
    for rel, _, size in files:
        entries.append({b"length": size, b"path": [part.encode() for part in rel]})
        gap = -size % piece
        if pad and gap:
            entries.append({b"attr": b"p", b"length": gap, b"path": [b".pad", str(gap).encode()]})
    return entries


def _file_tree(entries: list[tuple[list[str], int, FileHashes]]) -> dict:
    tree: dict = {}
    for parts, size, hashes in entries:
        node = tree
        for part in parts:
            node = node.setdefault(part.encode(), {})
        leaf: dict = {b"length": size}
        if size:
            leaf[b"pieces root"] = hashes.v2_root
        node[b""] = leaf
    return tree


def _v1_stream_pieces(paths: list[Path], piece: int) -> bytes:
    """v1-only torrents of several files: pieces run across file boundaries (a second read)."""
    out, current = [], hashlib.sha1()
    filled = 0
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(piece - filled):
                current.update(chunk)
                filled += len(chunk)
                if filled == piece:
                    out.append(current.digest())
                    current, filled = hashlib.sha1(), 0
    if filled:
        out.append(current.digest())
    return b"".join(out)


def torrent_from_resume(resume: bytes) -> bytes | None:
    """The complete .torrent of a finished download, rebuilt from its resume data; None when it cannot be.

    Resume data saved with the info dict holds the info dict, the web seeds and, for v2, each file's
    merkle tree. The piece layers come from the tree (its leaves hashed up, when the piece level was
    not kept) and must hash up to the file's pieces root. libtorrent's `write_torrent_file` does the
    same but took 2 s for a 1 GiB hybrid (it grows faster than the file) while holding the GIL.
    """
    try:
        data = lt.bdecode(resume)
        info = data[b"info"]
        parsed = lt.torrent_info(lt.bencode({b"info": info}))
    except (KeyError, TypeError, RuntimeError):
        return None
    top: dict = {b"info": info}
    if b"file tree" in info:
        layers = _piece_layers(parsed, data.get(b"trees") or [])
        if layers is None:
            return None
        top[b"piece layers"] = layers
    seeds = data.get(b"url-list") or []
    if seeds:
        top[b"url-list"] = seeds[0] if len(seeds) == 1 else seeds
    blob = lt.bencode(top)
    ids = lt.torrent_info(blob).info_hashes()
    same = (not ids.has_v1() or ids.v1.to_bytes() == data.get(b"info-hash")) and \
        (not ids.has_v2() or ids.v2.to_bytes() == data.get(b"info-hash2"))
    return blob if same else None


def _piece_layers(parsed, trees: list) -> dict[bytes, bytes] | None:
    files, piece = parsed.layout(), parsed.piece_length()
    per_piece = piece // BLOCK
    layers = {}
    for index in range(files.num_files()):
        size = files.file_size(index)
        if files.file_flags(index) & lt.file_storage.flag_pad_file or size <= piece:
            continue
        root = bytes(files.root(index).to_bytes())
        layer = _layer_from_tree(trees[index] if index < len(trees) else None, size, per_piece)
        if layer is None or _layer_root(layer, per_piece) != root:
            return None
        layers[root] = b"".join(layer)
    return layers


def _layer_from_tree(tree: dict | None, size: int, per_piece: int) -> list[bytes] | None:
    """The piece-level hashes of one file's merkle tree as libtorrent's resume data stores it.

    Nodes are numbered breadth first from the root (0); `mask`, when present, has a bit (most
    significant first) for each node and `hashes` lists only the nodes whose bit is set.
    """
    if not tree or not tree.get(b"hashes"):
        return None
    leaves = -(-size // BLOCK)
    width = _next_pow2(leaves)
    count = 2 * width - 1
    raw, mask = tree[b"hashes"], tree.get(b"mask")
    present = _mask_nodes(mask, count) if mask else range(count)
    if len(raw) != 32 * len(present):
        return None
    nodes = {node: raw[32 * n:32 * n + 32] for n, node in enumerate(present)}
    first_leaf, first_piece = width - 1, width // per_piece - 1
    layer = []
    for p in range(-(-leaves // per_piece)):
        known = nodes.get(first_piece + p)
        if known is None:
            blocks = [nodes.get(first_leaf + b, _ZERO if b >= leaves else None)
                      for b in range(p * per_piece, (p + 1) * per_piece)]
            if None in blocks:
                return None
            known = _merkle_root(blocks, per_piece, _ZERO)
        layer.append(known)
    return layer


def _mask_nodes(mask: bytes, count: int) -> list[int]:
    """The node numbers whose bit is set, a byte at a time (most of a mask is 0x00 or 0xFF)."""
    nodes: list[int] = []
    for at, byte in enumerate(mask):
        if byte == 0xFF:
            nodes.extend(range(8 * at, 8 * at + 8))
        elif byte:
            nodes.extend(8 * at + bit for bit in range(8) if byte & (0x80 >> bit))
    return [node for node in nodes if node < count] if nodes and nodes[-1] >= count else nodes


def magnet_uri(*, v1: str, v2: str, name: str, size: int, web_seed: str = "") -> str:
    parts = []
    if v1:
        parts.append(f"xt=urn:btih:{v1}")
    if v2:
        parts.append(f"xt=urn:btmh:1220{v2}")
    parts += [f"dn={quote(name, safe='')}", f"xl={size}"]
    if web_seed:
        parts.append(f"ws={quote(web_seed, safe='')}")
    return "magnet:?" + "&".join(parts)

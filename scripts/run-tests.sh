#!/usr/bin/env bash
# Runs every test: Python (pytest) and JavaScript (Node's own test runner).
# Fails on any failed test and on zero tests collected (pytest exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export HF_HUB_OFFLINE=1

status=0
if compgen -G "web/**/*.test.mjs" >/dev/null || ls web/tests/*.test.mjs >/dev/null 2>&1; then
  node --test web/tests/ || status=1
fi

"$BIN/python" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  rc=1
fi
[ "$rc" -ne 0 ] && status=$rc
exit $status

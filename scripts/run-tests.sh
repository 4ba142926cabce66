#!/usr/bin/env bash
# Runs every check and test: ruff, the import-linter contracts, the type checker (mypy),
# JavaScript (Node's own test runner) and Python (pytest).
# Fails on any failed test and on zero tests collected (pytest exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."

# Chromium running as root raises threads to SCHED_FIFO 99; on two cores one such thread stuck
# in the kernel starved every other process for 15 minutes once (2026-11-27). Without
# CAP_SYS_NICE nothing the tests start can take real-time priority (it keeps normal priority).
if [ -z "${PROMPTUS_NO_REALTIME:-}" ] && [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  export PROMPTUS_NO_REALTIME=1
  exec setpriv --bounding-set -sys_nice -- bash "$PWD/scripts/run-tests.sh" "$@"
fi
BIN=${VENV:-.venv}/bin
export HF_HUB_OFFLINE=1

# A real PostgreSQL for the telemetry store's tests (Debian's package, installed by
# scripts/install-system-deps.sh): a throwaway instance of this run only (own data folder, own
# port on 127.0.0.1), stopped and deleted when this script exits, whether the tests pass, fail
# or are interrupted. PROMPTUS_TEST_PG_DSN set by the caller names another one instead.
if [ -z "${PROMPTUS_TEST_PG_DSN:-}" ]; then
  PGTMP=$(mktemp -d "${TMPDIR:-/tmp}/promptus-test-pg.XXXXXX")
  trap 'bash scripts/stop-test-postgres.sh "$PGTMP"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if dsn=$(bash scripts/start-test-postgres.sh "$PGTMP"); then
    export PROMPTUS_TEST_PG_DSN=$dsn
  else
    echo "could not start PostgreSQL: its tests will skip (or fail under PROMPTUS_REQUIRE_SHARED=1)" >&2
  fi
fi

status=0
# The house rules first: lint, formatting, the floor plan (no import runs upward, torch and Ray
# only where allowed) and the types (packages and strictness in pyproject.toml's [tool.mypy];
# its cache in .mypy_cache keeps a run after small edits to seconds).
"$BIN/ruff" check . || status=1
"$BIN/ruff" format --check . || status=1
"$BIN/lint-imports" || status=1
"$BIN/mypy" || status=1

node --test web/tests/ || status=1

"$BIN/python" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  rc=1
fi
[ "$rc" -ne 0 ] && status=$rc
exit $status

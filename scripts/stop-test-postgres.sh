#!/usr/bin/env bash
# Stops the throwaway PostgreSQL that start-test-postgres.sh DIR started and deletes DIR.
# Safe when it never started or is already gone.
set -uo pipefail
DIR=${1:?usage: stop-test-postgres.sh DIR}
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -1)
PGBIN=/usr/lib/postgresql/$PGVER/bin
if [ -f "$DIR/data/postmaster.pid" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  else
    "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  fi
fi
rm -rf "$DIR"

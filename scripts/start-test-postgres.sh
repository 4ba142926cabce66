#!/usr/bin/env bash
# Starts the local PostgreSQL cluster (Debian's package) and makes the test role and
# database; prints the DSN for PROMPTUS_TEST_PG_DSN. Safe to run twice.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -1)
$SUDO pg_ctlcluster "$PGVER" main start >&2 2>/dev/null || $SUDO pg_ctlcluster "$PGVER" main status >/dev/null
as_postgres() { $SUDO runuser -u postgres -- "$@"; }
as_postgres psql -q -tc "SELECT 1 FROM pg_roles WHERE rolname='promptus'" | grep -q 1 \
  || as_postgres psql -q -c "CREATE ROLE promptus LOGIN PASSWORD 'promptus'" >&2
as_postgres psql -q -tc "SELECT 1 FROM pg_database WHERE datname='promptus_test'" | grep -q 1 \
  || as_postgres createdb -O promptus promptus_test >&2
echo "postgresql://promptus:promptus@127.0.0.1:5432/promptus_test"

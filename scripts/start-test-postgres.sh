#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for one test run and prints its DSN (for PROMPTUS_TEST_PG_DSN).
#
#   dsn=$(bash scripts/start-test-postgres.sh DIR)    # DIR: an empty folder of the caller's
#   ...                                               # tests
#   bash scripts/stop-test-postgres.sh DIR            # stops it and deletes DIR
#
# The instance is the test run's own: its data folder under DIR, a free port on 127.0.0.1 only,
# its socket in DIR, trust authentication for the role `promptus`, database `promptus_test`,
# no fsync (nothing in it outlives the run). The system's PostgreSQL clusters are not touched.
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
DIR=${1:?usage: start-test-postgres.sh DIR}
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -1)
PGBIN=/usr/lib/postgresql/$PGVER/bin
mkdir -p "$DIR"
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
as_owner "$PGBIN/initdb" -D "$DIR/data" -U promptus --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for attempt in 1 2 3; do  # a port taken between the probe and the start: try another
  PORT=$(free_port)
  if as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c full_page_writes=off" >/dev/null; then
    as_owner "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U promptus promptus_test
    echo "test PostgreSQL $PGVER: port $PORT, data in $DIR (stopped and deleted at the end)" >&2
    echo "postgresql://promptus@127.0.0.1:$PORT/promptus_test"
    exit 0
  fi
done
cat "$DIR/server.log" >&2
exit 1

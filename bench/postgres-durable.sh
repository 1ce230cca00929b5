#!/usr/bin/env bash
# Starts a PostgreSQL for the benchmark on 127.0.0.1:5433 (trust auth, user
# postgres) with PostgreSQL's own durable defaults — fsync, synchronous
# commit and full-page writes on — so its figures include the cost of
# durable commits. (The test instance of .ci/postgres.sh turns them off.)
#
#   sudo bash bench/postgres-durable.sh
#   cargo run --release -p vouchsafe-bench -- --engine postgres \
#     --postgres-url postgres://postgres@127.0.0.1:5433/postgres
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=${PGDATA:-/tmp/vouchsafe-bench-pg}
PORT=${PORT:-5433}

if [ -f "$PGDATA/postmaster.pid" ] && su postgres -c "$PGBIN/pg_ctl -D $PGDATA status" >/dev/null 2>&1; then
  echo "PostgreSQL already running in $PGDATA"
  exit 0
fi
rm -rf "$PGDATA"
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
su postgres -c "$PGBIN/initdb -D $PGDATA --auth=trust -U postgres" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w start \
  -o \"-h 127.0.0.1 -p $PORT -k /tmp -c max_connections=200 -c shared_buffers=256MB\"" >/dev/null
su postgres -c "psql -h 127.0.0.1 -p $PORT -U postgres -Atc 'SHOW fsync; SHOW synchronous_commit; SHOW full_page_writes'" |
  paste -sd' ' | sed 's/^/fsync, synchronous_commit, full_page_writes: /'
echo "PostgreSQL running on 127.0.0.1:$PORT ($PGBIN), data in $PGDATA"

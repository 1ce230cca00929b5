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
cd "$(dirname "$0")/.."

PORT=${PORT:-5433}
PGDATA=${PGDATA:-/tmp/vouchsafe-bench-pg} PORT=$PORT \
  PG_OPTIONS="-c max_connections=200 -c shared_buffers=256MB" bash .ci/postgres.sh
su postgres -c "psql -h 127.0.0.1 -p $PORT -U postgres -Atc 'SHOW fsync; SHOW synchronous_commit; SHOW full_page_writes'" |
  paste -sd' ' | sed 's/^/fsync, synchronous_commit, full_page_writes: /'

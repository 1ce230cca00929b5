#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (trust auth, user postgres) for the test
# suite, installing Debian's server first if it is missing. Debian keeps the
# server binaries in its versioned folder, not on PATH.
#
# PORT (5432), PGDATA (/tmp/vouchsafe-ci-pg) and PG_OPTIONS (the server
# options; by default durability off, since the tests need speed, not
# crash safety) may be set: bench/postgres-durable.sh starts a durable one.
set -euo pipefail

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=${PGDATA:-/tmp/vouchsafe-ci-pg}
PORT=${PORT:-5432}
PG_OPTIONS=${PG_OPTIONS:--c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400}

if [ -f "$PGDATA/postmaster.pid" ] && su postgres -c "$PGBIN/pg_ctl -D $PGDATA status" >/dev/null 2>&1; then
  echo "PostgreSQL already running in $PGDATA"
  exit 0
fi
rm -rf "$PGDATA"
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
su postgres -c "$PGBIN/initdb -D $PGDATA --auth=trust -U postgres" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w start \
  -o \"-h 127.0.0.1 -p $PORT -k /tmp $PG_OPTIONS\"" >/dev/null
echo "PostgreSQL running on 127.0.0.1:$PORT ($PGBIN), data in $PGDATA"

#!/bin/sh
# PostgreSQL 15 as a container's workload (tests/integration/daemons_test.cc,
# scripts/bench_daemons.sh). Runs as root inside the container: makes the
# data directory in the writable area, owned by postgres, runs initdb, then
# becomes the postmaster (the container's init) under uid postgres,
# accepting every client of the test bed without a password.
set -e
B=/usr/lib/postgresql/15/bin
mkdir -p /var/lib/pg
chown postgres:postgres /var/lib/pg
exec setpriv --reuid=postgres --regid=postgres --init-groups sh -c "
  $B/initdb -D /var/lib/pg -A trust -U postgres >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log >&2; exit 1; }
  echo 'host all all 0.0.0.0/0 trust' >> /var/lib/pg/pg_hba.conf
  exec $B/postgres -D /var/lib/pg -c listen_addresses='*' -c unix_socket_directories=/tmp -c max_connections=50"

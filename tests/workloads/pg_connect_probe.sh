#!/usr/bin/env bash
# A client of PostgreSQL that times whole new connections (connect, one
# query, disconnect) every 50 ms for SECONDS seconds, one line per
# connection: "ok MS" or "failed MS". Run in the test bed's client
# namespace by tests/integration/daemons_test.cc and
# scripts/bench_daemons.sh. PGBIN is PostgreSQL's own bin directory: on
# Debian /usr/bin/psql is a Perl wrapper whose start (~75 ms on a small
# VM) would be counted as connection time.
# Usage: pg_connect_probe.sh SECONDS PGBIN IP
set -u
[[ $# -eq 3 && $1 =~ ^[0-9]{1,5}$ && -x $2/psql ]] || {
  echo "usage: pg_connect_probe.sh SECONDS PGBIN IP" >&2
  exit 2
}
end=$((SECONDS + $1))
while ((SECONDS < end)); do
  t0=$(date +%s%N)
  if PGCONNECT_TIMEOUT=10 timeout 15 "$2/psql" -h "$3" -U postgres -Atc "select 1" postgres >/dev/null 2>&1; then
    r=ok
  else
    r=failed
  fi
  echo "$r $((($(date +%s%N) - t0) / 1000000))"
  sleep 0.05
done

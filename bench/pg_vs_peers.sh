#!/bin/bash
# Runs the peer harness's PostgreSQL benchmark (MagicStack/pgbench's queries) with weave::pg's
# client added. The harness starts a throw-away cluster pinned to CPU 0, runs every client on
# CPU 1 at the same concurrency, interleaves the repeats and prints queries/s and queries per
# client CPU-second for every client (asyncpg on uvloop, psycopg 3, tokio-postgres and the C
# libpq pipeline client, its reference), measured in the same run.
#
# usage: bench/pg_vs_peers.sh PEERS_DIR [pg-bench.sh options] [name=command ...]
#   e.g. bench/pg_vs_peers.sh ../peers -r 5 -d 10
#   another build in the same run (before/after a change):
#   bench/pg_vs_peers.sh ../peers -r 4 -d 4 \
#     'weave_pg_main=OTHER_BUILD/bench/pg_client {dsn} {query} {secs} {conc} {warmup}'
set -eu
. "$(dirname "$0")/peers_common.sh"
peers_setup pg-bench.sh pg_client "${1:-}"
shift
# Every peer must be measured in this run: the harness shows a peer it could not build or
# import as "not measured", which would leave a bar without its reference.
"$peers/build.sh" >/dev/null
for b in libpq_pipeline tokio_pg; do
  [ -x "$peers/build/$b" ] || { echo "pg_vs_peers: $peers/build/$b was not built (libpq-dev, cargo, librust-tokio-postgres-dev)" >&2; exit 1; }
done
"${PY:-/usr/bin/python3}" -c 'import asyncpg, uvloop, psycopg' ||
  { echo "pg_vs_peers: asyncpg, uvloop and psycopg are needed (python3-asyncpg python3-uvloop python3-psycopg)" >&2; exit 1; }
exec "$peers/pg-bench.sh" "$@" \
  "weave_pg=$root/build/release/bench/pg_client {dsn} {query} {secs} {conc} {warmup}"

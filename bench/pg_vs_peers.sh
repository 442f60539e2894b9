#!/bin/bash
# Runs the peer harness's PostgreSQL benchmark (MagicStack/pgbench's queries) with weave::pg's
# client added. The harness starts a throw-away cluster pinned to CPU 0, runs every client on
# CPU 1 at the same concurrency, interleaves the repeats and prints queries/s and queries per
# client CPU-second for every client (asyncpg on uvloop, psycopg 3, tokio-postgres and the C
# libpq pipeline client, its reference), measured in the same run.
#
# usage: bench/pg_vs_peers.sh PEERS_DIR [pg-bench.sh options]
#   e.g. bench/pg_vs_peers.sh ../peers -r 5 -d 10
set -eu
. "$(dirname "$0")/peers_common.sh"
peers_setup pg-bench.sh pg_client "${1:-}"
shift
exec "$peers/pg-bench.sh" "$@" \
  "weave_pg=$root/build/release/bench/pg_client {dsn} {query} {secs} {conc} {warmup}"

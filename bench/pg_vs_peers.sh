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
if [ $# -lt 1 ] || [ ! -x "$1/pg-bench.sh" ]; then
  echo "usage: $0 PEERS_DIR [pg-bench.sh options]  (PEERS_DIR holds pg-bench.sh)" >&2
  exit 2
fi
peers=$(cd "$1" && pwd)
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null
cmake --build --preset release --target pg_client >/dev/null
exec "$peers/pg-bench.sh" "$@" \
  "weave_pg=$root/build/release/bench/pg_client {dsn} {query} {secs} {conc} {warmup}"

#!/bin/bash
# Runs the peer harness's HTTP plaintext benchmark (wrk, keep-alive; `-p 16` for TechEmpower's
# pipelined shape) with weave's HTTP server added on io_uring and on epoll. The harness prints
# every server's requests/s and requests per server CPU-second relative to its raw epoll C
# server, measured in the same run, servers interleaved.
#
# usage: bench/http_vs_peers.sh PEERS_DIR [http-bench.sh options]
#   e.g. bench/http_vs_peers.sh ../peers -r 5          (keep-alive, -c 50)
#        bench/http_vs_peers.sh ../peers -r 5 -p 16 -c 64
set -eu
. "$(dirname "$0")/peers_common.sh"
peers_setup http-bench.sh http_hello "${1:-}"
shift
server="$root/build/release/examples/http_hello"
exec "$peers/http-bench.sh" "$@" \
  "weave_uring=env WEAVE_BACKEND=uring $server --port {port}" \
  "weave_epoll=env WEAVE_BACKEND=epoll $server --port {port}"

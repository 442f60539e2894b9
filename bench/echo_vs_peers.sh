#!/bin/bash
# Runs the peer harness's TCP echo benchmark with weave's four echo servers added (the protocol
# and the streams API, each on io_uring and on epoll). The harness prints every server's
# throughput and messages per server CPU-second relative to its raw epoll C server, measured in
# the same run, servers interleaved.
#
# usage: bench/echo_vs_peers.sh PEERS_DIR [echo-bench.sh options]
#   e.g. bench/echo_vs_peers.sh ../peers -r 5 --skip asyncio_proto,asyncio_streams
set -eu
. "$(dirname "$0")/peers_common.sh"
peers_setup echo-bench.sh echo_server "${1:-}"
shift
server="$root/build/release/examples/echo_server"
exec "$peers/echo-bench.sh" "$@" \
  "weave_proto_uring=$server --backend uring --protocol --port {port}" \
  "weave_proto_epoll=$server --backend epoll --protocol --port {port}" \
  "weave_streams_uring=$server --backend uring --port {port}" \
  "weave_streams_epoll=$server --backend epoll --port {port}"

# Sourced by bench/*_vs_peers.sh: the checks and the build they all need before handing over to
# a harness of the peers' benchmarks.
#
# peers_setup HARNESS TARGET PEERS_DIR: exits with the usage unless PEERS_DIR holds HARNESS;
# builds TARGET in the release preset; sets `peers` (PEERS_DIR, absolute) and `root` (this
# checkout), and leaves the shell in `root`.
peers_setup() {
  local harness=$1 target=$2 dir=${3:-}
  if [ -z "$dir" ] || [ ! -x "$dir/$harness" ]; then
    echo "usage: $0 PEERS_DIR [$harness options]  (PEERS_DIR holds $harness)" >&2
    exit 2
  fi
  peers=$(cd "$dir" && pwd)
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$root"
  [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null
  cmake --build --preset release --target "$target" >/dev/null
}

#!/usr/bin/env bash
# Installs the Debian packages weave builds against when they are missing. Idempotent: a package
# already present is never touched, and without root (or sudo) it only says what is missing,
# since every optional package has a fallback (epoll for liburing, ...).
set -u
required=(cmake g++ make pkg-config libgtest-dev libgmock-dev libbenchmark-dev
          libmsgpack-cxx-dev libssl-dev
          node-llhttp zlib1g-dev   # weave::http: the llhttp parser's C sources, gzip/deflate
          libpq-dev postgresql)    # weave::pg, and the server its tests start
# The openssl command line makes the TLS tests' certificates and plays their peer. The services'
# tests drive real peers: curl, nginx, wrk and Python for HTTP, a throw-away PostgreSQL cluster;
# clang-14 with its runtime builds the libFuzzer targets; aiohttp's client is the HTTP client
# benchmark's peer.
optional=(liburing-dev openssl curl nginx wrk python3 python3-aiohttp clang-14
          libclang-rt-14-dev)
missing=()
for p in "${required[@]}" "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "install-deps: missing ${missing[*]} and not root; continuing without them" >&2
    exit 0
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null 2>&1 || true
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  # One unavailable optional package must not stop the rest.
  for p in "${missing[@]}"; do $sudo apt-get install -y -qq --no-install-recommends "$p" >/dev/null || \
    echo "install-deps: could not install $p" >&2; done
fi
exit 0

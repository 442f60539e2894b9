#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the pg tests.
#   pg_cluster.sh start STATE   initdb + start in a fresh temp directory; writes STATE/dsn
#                               (or STATE/error with what is missing), STATE/data, STATE/bin
#   pg_cluster.sh stop STATE    stops that server by its pid and removes its directory
#   pg_cluster.sh kill STATE    SIGKILLs the postmaster (tests of a server that dies)
#   pg_cluster.sh restart STATE starts the killed server again on the same port
# As root, the server runs as the `postgres` user (initdb refuses root). fsync is off, the Unix
# socket lives in the temp directory, TCP listens on a free port of 127.0.0.1.
set -u
cmd=${1:?start|stop|kill|restart}
state=${2:?state directory}
mkdir -p "$state"

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  d=$(dirname "$(command -v initdb 2>/dev/null)" 2>/dev/null) || true
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  return 1
}

fail() {
  echo "$1" >"$state/error"
  echo "pg_cluster: $1" >&2
  exit 0  # the tests fail with this message; the fixture itself has nothing to clean up
}

# A port below the kernel's ephemeral range: a port there is never handed to another test's
# socket bound to port 0 or connecting out, which could take it while a killed server restarts.
free_port() {
  local p lo=32768 first=10000 span
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  span=$((lo - first))
  # An ephemeral range that starts low leaves no such ports: any unprivileged one then.
  [ "$span" -ge 1000 ] || { first=20000; span=40000; }
  for _ in $(seq 1 50); do
    p=$((first + RANDOM % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

start_server() {  # data port bin
  as_owner "$3/pg_ctl" -D "$1" -l "$1/server.log" -w -t 30 \
    -o "-p $2 -k $1 -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
}

case "$cmd" in
  start)
    rm -f "$state/dsn" "$state/error"
    bin=$(find_bin) || fail "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with 'apt-get install postgresql' (scripts/install-deps.sh does) and re-run the tests."
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
      fail "running as root needs the 'postgres' user to start a server; 'apt-get install postgresql' creates it."
    fi
    data=$(mktemp -d /tmp/weave-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$data"
    echo "$data" >"$state/data"
    echo "$bin" >"$state/bin"
    if ! as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        >"$state/initdb.log" 2>&1 \
      && ! as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale \
        >"$state/initdb.log" 2>&1; then
      fail "initdb failed: $(tail -3 "$state/initdb.log")"
    fi
    for _ in 1 2 3 4 5; do
      port=$(free_port) || fail "no free TCP port found"
      if start_server "$data" "$port" "$bin"; then
        echo "$port" >"$state/port"
        echo "host=$data port=$port user=postgres dbname=postgres" >"$state/dsn"
        exit 0
      fi
    done
    fail "the server did not start: $(tail -5 "$data/server.log")"
    ;;
  stop|kill)
    data=$(cat "$state/data" 2>/dev/null) || exit 0
    pid=$(head -1 "$data/postmaster.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      if [ "$cmd" = kill ]; then
        kill -KILL "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        # the backends notice the postmaster is gone and exit; wait for the port to be free
        exit 0
      fi
      kill -INT "$pid"  # fast shutdown
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    [ "$cmd" = stop ] && rm -rf "$data" && rm -f "$state/data" "$state/dsn"
    exit 0
    ;;
  restart)
    data=$(cat "$state/data") && bin=$(cat "$state/bin") && port=$(cat "$state/port") || exit 1
    rm -f "$data/postmaster.pid"
    for _ in $(seq 1 100); do
      start_server "$data" "$port" "$bin" && exit 0
      sleep 0.1
    done
    exit 1
    ;;
  *) echo "usage: $0 start|stop|kill|restart STATE" >&2; exit 2 ;;
esac

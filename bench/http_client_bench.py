#!/usr/bin/python3
"""The HTTP client benchmark: 50 concurrent keep-alive GETs against the peers' raw_http server
(a C server on epoll, the limit reference), from weave's client (bench/http_client_bench.cpp),
wrk (-t 1) and aiohttp's client, in the same run, clients interleaved over REPEATS rounds. The
server is pinned to one CPU and the clients to the other. Each client's CPU time (user + system)
is taken from the kernel's accounting of the child process; the table shows requests per client
CPU-second (medians) and weave's ratio to wrk and to aiohttp.

usage: bench/http_client_bench.py PEERS_DIR [-d SECONDS] [-c CONNECTIONS] [-r REPEATS]
  PEERS_DIR holds build.sh and, once built, build/raw_http.
  --aiohttp-client URL CONNECTIONS SECONDS   (internal: the aiohttp client itself)
"""
import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = "0", "1"


def aiohttp_client(url, connections, seconds):
    import asyncio
    import aiohttp

    async def main():
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=conn) as session:
            for window, counting in ((0.5, False), (seconds, True)):
                until = time.monotonic() + window
                count = 0

                async def one():
                    nonlocal count
                    while time.monotonic() < until:
                        async with session.get(url) as r:
                            await r.read()
                        count += 1

                await asyncio.gather(*(one() for _ in range(connections)))
                if counting:
                    print("requests", count, flush=True)

    asyncio.run(main())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(argv):
    """Runs argv pinned to CLIENT_CPU; returns (stdout, CPU seconds it used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["taskset", "-c", CLIENT_CPU] + argv, check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--aiohttp-client":
        return aiohttp_client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    ap = argparse.ArgumentParser()
    ap.add_argument("peers")
    ap.add_argument("-d", type=float, default=5.0, help="seconds per run")
    ap.add_argument("-c", type=int, default=50, help="connections")
    ap.add_argument("-r", type=int, default=3, help="repeats")
    args = ap.parse_args()
    raw_http = os.path.join(args.peers, "build", "raw_http")
    if not os.access(raw_http, os.X_OK):
        subprocess.run([os.path.join(args.peers, "build.sh")], check=True)
    weave_bench = os.path.join(ROOT, "build", "release", "bench", "http_client_bench")
    if not os.access(weave_bench, os.X_OK):
        sys.exit(f"{weave_bench} missing: "
                 "cmake --build --preset release --target http_client_bench")

    port = free_port()
    server = subprocess.Popen(["taskset", "-c", SERVER_CPU, raw_http, str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        d, c = str(args.d), str(args.c)
        clients = {
            "weave": [weave_bench, url, c, d],
            # wrk's duration is whole seconds; its warm-up is not separated, as ours is.
            "wrk": ["wrk", "-t", "1", "-c", c, "-d", f"{max(1, round(args.d))}s", url],
            "aiohttp": [os.environ.get("PY", "/usr/bin/python3"), os.path.abspath(__file__), "--aiohttp-client", url, c, d],
        }
        results = {name: [] for name in clients}
        for _ in range(args.r):
            for name, argv in clients.items():
                out, cpu = run_child(argv)
                if name == "wrk":
                    m = re.search(r"(\d+) requests in", out)
                    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                    if errors:
                        sys.exit("wrk: " + errors.group(0))
                else:
                    m = re.search(r"requests (\d+)", out)
                    if name == "weave" and "failures 0" not in out:
                        sys.exit("weave: failed requests:\n" + out)
                requests = int(m.group(1))
                results[name].append((requests, cpu, requests / cpu))
    finally:
        server.terminate()
        server.wait()

    print(f"{args.c} concurrent keep-alive GETs against raw_http, {args.d:g} s per run, "
          f"{args.r} repeats (medians; client on CPU {CLIENT_CPU}, server on CPU {SERVER_CPU})")
    print(f"{'client':10} {'requests':>10} {'client CPU-s':>13} {'req/CPU-s':>11}")
    med = {}
    for name, rows in results.items():
        med[name] = statistics.median(r[2] for r in rows)
        print(f"{name:10} {statistics.median(r[0] for r in rows):>10.0f} "
              f"{statistics.median(r[1] for r in rows):>13.2f} {med[name]:>11.0f}")
    print(f"weave / wrk     = {med['weave'] / med['wrk']:.2f}x   (target >= 0.5x)")
    print(f"weave / aiohttp = {med['weave'] / med['aiohttp']:.1f}x   (target >= 10x)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""RSS of weave's HTTP server per idle keep-alive connection.

Starts examples/http_hello, opens N connections that each make one request and stay open, and
prints the server's resident memory per connection (kernel socket buffers are not part of a
process's RSS). The bar is 4 KiB. With --nginx, the same for nginx in the same run.

usage: bench/http_idle_memory.py [-n 10000] [--backend uring|epoll]
"""
import argparse, os, resource, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=10):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def request(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"hello"):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--backend", default="uring")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.n + 1000), hard))
    port = free_port()
    exe = os.path.join(ROOT, "build/release/examples/http_hello")
    env = dict(os.environ, WEAVE_BACKEND=args.backend)
    server = subprocess.Popen([exe, "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        for s in warm:
            request(s)
        time.sleep(0.2)
        before = rss_kib(server.pid)
        socks = []
        for _ in range(args.n):
            s = socket.create_connection(("127.0.0.1", port))
            request(s)
            socks.append(s)
        time.sleep(0.5)
        after = rss_kib(server.pid)
        per = (after - before) * 1024 / args.n
        print(f"backend={args.backend} connections={args.n} rss_before_kib={before} "
              f"rss_after_kib={after} bytes_per_connection={per:.0f} bar=4096 "
              f"{'met' if per <= 4096 else 'MISSED'}")
        for s in socks + warm:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

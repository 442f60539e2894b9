#!/usr/bin/python3
"""The HTTP server the client's tests talk to: Python's http.server (standard library only),
HTTP/1.1 with keep-alive, on 127.0.0.1 and a free port, which it prints as "PORT <n>" once it
listens (::1 with --ipv6). Each path is one behaviour a test needs; /stats counts connections and requests."""
import gzip
import os
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
stats = {"connections": 0, "requests": 0, "open": 0, "max_open": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.served = 0
        with lock:
            stats["connections"] += 1
            stats["open"] += 1
            stats["max_open"] = max(stats["max_open"], stats["open"])

    def finish(self):
        with lock:
            stats["open"] -= 1
        try:
            super().finish()
        except OSError:
            pass

    def reply(self, status, body=b"", headers=(), head_only=False):
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "content-length" not in names and "transfer-encoding" not in names:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def handle_any(self, method):
        self.served += 1
        with lock:
            stats["requests"] += 1
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        body = self.read_body() if method not in ("GET", "HEAD") else b""
        if path == "/hello":
            return self.reply(200, b"hello", [("Content-Type", "text/plain")], method == "HEAD")
        if path == "/stats":
            with lock:
                text = " ".join(f"{k}={v}" for k, v in stats.items())
            return self.reply(200, text.encode())
        if path == "/reset-stats":
            with lock:
                stats.update(connections=stats["open"], requests=0, max_open=stats["open"])
            return self.reply(200, b"ok")
        if path == "/slow":
            time.sleep(int(q.get("ms", "100")) / 1000)
            return self.reply(200, b"slow")
        if path == "/stall":
            time.sleep(int(q.get("ms", "5000")) / 1000)
            return self.reply(200, b"late")
        if path == "/stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"12345")
            self.wfile.flush()
            time.sleep(int(q.get("ms", "5000")) / 1000)
            return self.wfile.write(b"67890")
        if path == "/echo":
            te = self.headers.get("Transfer-Encoding", "")
            return self.reply(200, body, [("X-Method", method), ("X-Transfer-Encoding", te),
                                          ("X-Content-Length", self.headers.get("Content-Length", ""))])
        if path == "/headers":
            text = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
            return self.reply(200, text.encode())
        if path == "/method":
            return self.reply(200, (method + " " + str(len(body))).encode())
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("n", "5"))):
                piece = f"chunk{i};".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            return self.wfile.write(b"0\r\n\r\n")
        if path in ("/gzip", "/deflate", "/rawdeflate"):
            plain = (b"compressible text " * int(q.get("n", "1000")))
            if path == "/gzip":
                data, enc = gzip.compress(plain), "gzip"
            elif path == "/deflate":
                data, enc = zlib.compress(plain), "deflate"
            else:
                c = zlib.compressobj(wbits=-15)
                data, enc = c.compress(plain) + c.flush(), "deflate"
            return self.reply(200, data, [("Content-Encoding", enc)])
        if path == "/redirect":
            code = int(q.get("code", "302"))
            return self.reply(code, b"moved", [("Location", q["to"])])
        if path == "/chain":
            n = int(q.get("n", "1"))
            if n == 0:
                return self.reply(200, b"end of chain")
            return self.reply(302, b"", [("Location", f"/chain?n={n - 1}")])
        if path == "/stale":
            if self.served > 1:
                # A connection the server gave up on as the request arrived: closed unanswered.
                self.close_connection = True
                return
            return self.reply(200, b"fresh")
        if path == "/close":
            return self.reply(200, b"closing", [("Connection", "close")])
        if path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"body delimited by the close")
            self.close_connection = True
            return
        if path == "/continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            return self.reply(200, b"after 1xx")
        if path == "/big":
            size = int(q.get("bytes", "1048576"))
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            sent = 0
            while sent < size:
                n = min(len(block), size - sent)
                self.wfile.write(block[:n])
                sent += n
            return
        if path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
            self.close_connection = True
            return
        if path == "/status":
            return self.reply(int(q.get("code", "200")), b"status")
        return self.reply(404, b"not found")

    def do_GET(self):
        self.handle_any("GET")

    def do_HEAD(self):
        self.handle_any("HEAD")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class Server6(Server):
    address_family = socket.AF_INET6


def exit_with_parent():
    """A test that crashes cannot stop its peer: the peer then stops itself."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def main():
    threading.Thread(target=exit_with_parent, daemon=True).start()
    # "--ipv6": listen on ::1 instead, for URLs with an IPv6 literal.
    if "--ipv6" in sys.argv[1:]:
        server = Server6(("::1", 0), Handler)
    else:
        server = Server(("127.0.0.1", 0), Handler)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

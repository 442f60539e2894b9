// weave::http's server driven by real clients: curl (keep-alive, POST, chunked upload,
// 100-continue, HEAD, https, a Unix socket), Python's http.client on one kept-alive connection,
// a short wrk load, and 10,000 idle keep-alive connections. Each client runs as a child process
// started and reaped by the test (weave's own subprocess support); each wait is bounded.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/http.hpp"
#include "support/steps.hpp"
#include "support/tls_certs.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
namespace http = weave::http;
using weave::Coro;
using weave_test::run_bounded;

namespace {

class HttpServerPeers : public weave_test::FdLeakCheck {};

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a client to its end; a client that cannot be found fails the test with how to get it.
// The arguments are a ProcessArgs, which a braced list inside co_await may build safely on g++ 12.
Coro<Ran> run_client(std::string program, weave::ProcessArgs args, std::string input = {}) {
  const weave::SubprocessOptions pipes{
      .stdin_ = weave::PIPE, .stdout_ = weave::PIPE, .stderr_ = weave::PIPE};
  Ran ran;
  try {
    weave::Process proc = co_await weave::create_subprocess_exec(program, std::move(args), pipes);
    auto [out, err] = co_await proc.communicate(std::move(input));
    ran.code = co_await proc.wait();
    ran.out = std::move(out);
    ran.err = std::move(err);
  } catch (const std::system_error& e) {
    ADD_FAILURE() << program << ": " << e.what() << " (scripts/install-deps.sh installs it)";
  }
  co_return ran;
}

http::Application peer_app() {
  http::Application app;
  app.options().client_max_size = std::size_t{8} << 20;
  app.router().add_get(
      "/", [](http::Request&) -> Coro<http::Response> { co_return http::Response(200, "hello"); });
  app.router().add_get("/users/{id}", [](http::Request& r) -> Coro<http::Response> {
    co_return http::Response(200, "user " + std::string(r.match_info("id")) + " " +
                                      std::string(r.query().get("q").value_or("-")));
  });
  app.router().add_post("/length", [](http::Request& r) -> Coro<http::Response> {
    std::string body = co_await r.read();
    std::string how = r.content_length() ? "sized" : "chunked";
    co_return http::Response(200, std::to_string(body.size()) + " " + how);
  });
  return app;
}

Coro<void> curl_drives_the_server() {
  http::Application app = peer_app();
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  // Two URLs in one curl: the second reuses the first's connection.
  Ran get = co_await run_client("curl", {"-sS", "-v", base + "/", base + "/users/7?q=a%20b"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out, "hellouser 7 a b");
  EXPECT_NE(get.err.find("Re-using existing connection"), std::string::npos) << get.err;
  Ran post = co_await run_client("curl", {"-sS", "--data-binary", "@-", base + "/length"},
                                 std::string(1000, 'p'));
  EXPECT_EQ(post.out, "1000 sized");
  Ran chunked = co_await run_client(
      "curl", {"-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", base + "/length"},
      std::string(70000, 'c'));
  EXPECT_EQ(chunked.out, "70000 chunked");
  // curl asks for 100-continue before a body over 1 MiB.
  Ran big = co_await run_client("curl", {"-sS", "-v", "--data-binary", "@-", base + "/length"},
                                std::string(std::size_t{2} << 20, 'b'));
  EXPECT_EQ(big.out, std::to_string(std::size_t{2} << 20) + " sized");
  EXPECT_NE(big.err.find("HTTP/1.1 100 Continue"), std::string::npos) << big.err;
  Ran head = co_await run_client("curl", {"-sS", "-I", base + "/"});
  EXPECT_NE(head.out.find("Content-Length: 5"), std::string::npos) << head.out;
  Ran missing = co_await run_client(
      "curl", {"-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", base + "/"});
  EXPECT_EQ(missing.out, "405");
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServerPeers, CurlGetsPostsUploadsChunkedAndReusesTheConnection) {
  run_bounded(curl_drives_the_server(), 30s);
}

Coro<void> python_http_client() {
  http::Application app = peer_app();
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::string script = R"(
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
out = []
for method, path, body in [("GET", "/", None), ("POST", "/length", b"x" * 12345),
                           ("GET", "/users/9?q=z", None), ("GET", "/nope", None)]:
    c.request(method, path, body=body)
    r = c.getresponse()
    out.append("%d %s" % (r.status, r.read().decode()))
    if method == "GET" and path == "/":
        first = c.sock
out.append("same connection" if c.sock is first else "new connection")
print("|".join(out))
)";
  Ran ran = co_await run_client("python3", {"-c", script, std::to_string(server.port())});
  EXPECT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "200 hello|200 12345 sized|200 user 9 z|404 Not Found|same connection\n");
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServerPeers, PythonHttpClientKeepsOneConnectionForAllItsRequests) {
  run_bounded(python_http_client(), 30s);
}

Coro<void> https_with_curl() {
  weave_test::TestCertificates certs;
  http::Application app = peer_app();
  app.options().ssl = weave::SSLContext::server(certs.cert_file(), certs.key_file());
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/users/1";
  Ran ok = co_await run_client(
      "curl", {"-sS", "--cacert", certs.ca_file(), "--resolve",
               "localhost:" + std::to_string(server.port()) + ":127.0.0.1", url, url});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "user 1 -user 1 -");
  // Without the CA the client refuses the certificate (curl's exit 60).
  Ran refused = co_await run_client(
      "curl",
      {"-sS", "--resolve", "localhost:" + std::to_string(server.port()) + ":127.0.0.1", url});
  EXPECT_EQ(refused.code, 60) << refused.err;
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServerPeers, HttpsThroughTheSSLContextWorksWithCurl) {
  run_bounded(https_with_curl(), 30s);
}

Coro<void> unix_socket_with_curl() {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("weave-http-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/http.sock";
  http::Application app = peer_app();
  http::Server server = co_await http::start_unix_server(app, path);
  EXPECT_EQ(server.port(), 0);
  Ran ran = co_await run_client("curl", {"-sS", "--unix-socket", path, "http://weave/users/3"});
  EXPECT_EQ(ran.out, "user 3 -");
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(std::filesystem::exists(path));
  std::filesystem::remove_all(dir);
}

TEST_F(HttpServerPeers, UnixSocketServerAnswersCurl) {
  run_bounded(unix_socket_with_curl(), 30s);
}

Coro<void> wrk_smoke() {
  http::Application app = peer_app();
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  Ran ran = co_await run_client(
      "wrk", {"-t1", "-c10", "-d1s", "http://127.0.0.1:" + std::to_string(server.port()) + "/"});
  EXPECT_EQ(ran.code, 0) << ran.err;
  EXPECT_NE(ran.out.find("Requests/sec:"), std::string::npos) << ran.out;
  EXPECT_EQ(ran.out.find("Non-2xx"), std::string::npos) << ran.out;
  EXPECT_EQ(ran.out.find("Socket errors"), std::string::npos) << ran.out;
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServerPeers, WrkLoadGetsOnlySuccessfulAnswers) {
  run_bounded(wrk_smoke(), 30s);
}

// 10,000 keep-alive connections that each made a request and went idle: all stay open, and
// each still answers its next request. The clients live in a Python child, since both ends in
// one process would pass the fd limit.
Coro<void> ten_thousand_idle() {
  http::Application app = peer_app();
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::string script = R"(
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
def answer(s):
    data = b""
    while not data.endswith(b"hello"):
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(20)
    s.sendall(req)
    socks.append(s)
ok = sum(answer(s) for s in socks)
print("ready", ok, flush=True)
sys.stdin.readline()
for s in socks:
    s.sendall(req)
print("answered", sum(answer(s) for s in socks), flush=True)
)";
  const weave::SubprocessOptions pipes{.stdin_ = weave::PIPE, .stdout_ = weave::PIPE};
  weave::Process proc = co_await weave::create_subprocess_exec(
      "python3", {"-c", script, std::to_string(server.port()), "10000"}, pipes);
  EXPECT_EQ(co_await proc.stdout_->readline(), "ready 10000\n");
  EXPECT_EQ(server.connection_count(), 10000u);
  co_await weave::sleep(50ms);
  EXPECT_EQ(server.connection_count(), 10000u);
  proc.stdin_->write("go\n");
  co_await proc.stdin_->drain();
  EXPECT_EQ(co_await proc.stdout_->readline(), "answered 10000\n");
  EXPECT_EQ(co_await proc.wait(), 0);
  co_await weave_test::until([&] { return server.connection_count() == 0; });
  EXPECT_EQ(server.connection_count(), 0u);
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServerPeers, TenThousandIdleKeepAliveConnectionsStayAndAnswer) {
  run_bounded(ten_thousand_idle(), 120s);
}

}  // namespace

// weave::http's client against nginx (a generated configuration in a temp directory): keep-alive
// counted by stub_status, gzip, a 64 MiB file streamed in bounded memory, https with a test CA
// (refused by default, accepted with the CA loaded). The fd count is unchanged by each test.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/http_client.hpp"
#include "support/http_peers.hpp"
#include "support/tls_certs.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::http::ClientResponse;
using weave::http::ClientSession;
using weave::http::ClientSessionOptions;
using weave::http::RequestOptions;
using weave::http::URL;
using weave_test::allocated_bytes;
using weave_test::HttpClient;
using weave_test::nginx_accepts;
using weave_test::NginxPeer;
using weave_test::parse_stats;
using weave_test::peer_stats;
using weave_test::run_bounded;

namespace {

// ---- nginx --------------------------------------------------------------------------------------

std::string large_text(std::size_t size) {
  std::string s;
  s.reserve(size);
  for (std::size_t i = 0; s.size() < size; ++i) s += "line " + std::to_string(i) + "\n";
  s.resize(size);
  return s;
}

weave::Coro<void> nginx_keepalive_gzip(const NginxPeer& nginx, const std::string& text) {
  const long before = co_await nginx_accepts(nginx);
  ClientSession session;
  for (int i = 0; i < 20; ++i) {
    ClientResponse r = co_await session.get(nginx.url("/index.txt"));
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.header("Content-Encoding"), "gzip");
    EXPECT_EQ(co_await r.text(), text);
  }
  ClientResponse missing = co_await session.get(nginx.url("/missing"));
  EXPECT_EQ(missing.status(), 404);
  (void)co_await missing.read();
  co_await session.close();
  EXPECT_EQ(co_await nginx_accepts(nginx) - before, 2) << "one connection for 21 requests, "
                                                          "one for this /status";
}

TEST_F(HttpClient, NginxKeepAliveAndGzip) {
  const std::string text = large_text(200000);
  NginxPeer nginx({{"index.txt", text}});
  run_bounded(nginx_keepalive_gzip(nginx, text));
}

weave::Coro<void> nginx_large_body(const NginxPeer& nginx, std::size_t size) {
  ClientSessionOptions opts;
  opts.auto_decompress = false;
  ClientSession session(opts);
  RequestOptions identity;
  identity.headers.add("Accept-Encoding", "identity");
  ClientResponse r = co_await session.get(nginx.url("/large.bin"), identity);
  EXPECT_EQ(r.header("Content-Length"), std::to_string(size));
  const std::size_t baseline = allocated_bytes();
  std::size_t peak = 0;
  std::size_t total = 0;
  std::uint64_t sum = 0;
  for (;;) {
    std::string piece = co_await r.content().read(65536);
    if (piece.empty()) break;
    EXPECT_LE(piece.size(), 65536U);
    total += piece.size();
    for (unsigned char c : piece) sum += c;
    peak = std::max(peak, allocated_bytes());
  }
  EXPECT_TRUE(r.content().at_eof());
  EXPECT_EQ(total, size);
  EXPECT_EQ(sum, static_cast<std::uint64_t>(size / 256) * (255 * 256 / 2));
  EXPECT_LT(peak - std::min(peak, baseline), std::size_t{4} << 20)
      << "a 64 MiB body read with at most a few MiB in memory";
  EXPECT_EQ(session.idle_connections(), 1U);
  co_await session.close();
}

TEST_F(HttpClient, NginxLargeBodyStreamsInBoundedMemory) {
  const std::size_t size = std::size_t{64} << 20;
  std::string content(size, '\0');
  for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>(i & 0xff);
  NginxPeer nginx({{"large.bin", content}});
  content.clear();
  content.shrink_to_fit();
  run_bounded(nginx_large_body(nginx, size), 60s);
}

weave::Coro<void> nginx_https(const NginxPeer& nginx, const std::string& ca_file) {
  {
    ClientSession session;  // the system's CAs: the test CA is not among them
    bool refused = false;
    try {
      ClientResponse r = co_await session.get(nginx.https_url("/index.txt"));
    } catch (const weave::SSLCertVerificationError& e) {
      refused = std::string(e.what()).find("certificate verify failed") != std::string::npos ||
                e.reason() == "certificate verify failed";
    }
    EXPECT_TRUE(refused) << "verification is on by default";
    EXPECT_EQ(session.open_connections(), 0U);
    co_await session.close();
  }
  weave::SSLContext ctx = weave::SSLContext::client();
  ctx.load_verify_locations(ca_file);
  ClientSessionOptions opts;
  opts.connector.ssl = ctx;
  ClientSession session(opts);
  for (int i = 0; i < 3; ++i) {
    ClientResponse r = co_await session.get(nginx.https_url("/index.txt"));
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(co_await r.text(), "over tls\n");
  }
  EXPECT_EQ(session.open_connections(), 1U) << "kept alive over TLS too";
  co_await session.close();
}

TEST_F(HttpClient, HttpsAgainstNginxVerifiesByDefault) {
  weave_test::TestCertificates certs;
  NginxPeer nginx({{"index.txt", "over tls\n"}}, certs.cert_file(), certs.key_file());
  run_bounded(nginx_https(nginx, certs.ca_file()), 20s);
}

}  // namespace

// weave::http's client against Python's http.server (support/http_peer.py): URLs, keep-alive,
// HEAD and 1xx, sized, chunked and close-delimited bodies, gzip/deflate, uploads, status errors,
// and header injection refused. Each test checks the fd count is unchanged; every wait is bounded.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/http_client.hpp"
#include "support/http_peers.hpp"
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
using weave_test::parse_stats;
using weave_test::peer_stats;
using weave_test::PythonPeer;
using weave_test::run_bounded;

namespace {

// ---- URLs ---------------------------------------------------------------------------------------

TEST(HttpClientURL, ParsesSchemeHostPortAndTarget) {
  URL u = URL::parse("http://Example.ORG/a%20b/c?x=1&y=%2F#frag");
  EXPECT_EQ(u.scheme, "http");
  EXPECT_EQ(u.host, "example.org");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/a%20b/c?x=1&y=%2F");  // escapes kept, fragment dropped
  EXPECT_EQ(u.host_header(), "example.org");
  URL s = URL::parse("https://h:8443");
  EXPECT_EQ(s.port, 8443);
  EXPECT_EQ(s.target, "/");
  EXPECT_EQ(s.origin(), "https://h:8443");
  EXPECT_EQ(URL::parse("https://h/").port, 443);
  URL v6 = URL::parse("http://[::1]:8080/p?q");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 8080);
  EXPECT_EQ(v6.host_header(), "[::1]:8080");
  EXPECT_EQ(URL::parse("http://h?q=1").target, "/?q=1");
  EXPECT_EQ(URL::parse("http://h/a b\xc3\xa9").target, "/a%20b%C3%A9");
}

TEST(HttpClientURL, RefusesWhatCannotBeRequested) {
  for (const char* bad : {"ftp://h/", "h/path", "http:///p", "http://h:0/", "http://h:65536/",
                          "http://h:80x/", "http://[::1/", "http://user:pw@h/"}) {
    EXPECT_THROW(URL::parse(bad), weave::http::InvalidURL) << bad;
  }
  EXPECT_THROW(URL::parse("http://h/a\r\nX-Injected: 1"), weave::ValueError);
  EXPECT_THROW(URL::parse(std::string("http://h/a\0b", 12)), weave::http::InvalidURL);
}

TEST(HttpClientURL, JoinsRedirectLocations) {
  URL base = URL::parse("http://h:81/a/b/c?q=1");
  EXPECT_EQ(base.join("/x?y").str(), "http://h:81/x?y");
  EXPECT_EQ(base.join("d").str(), "http://h:81/a/b/d");
  EXPECT_EQ(base.join("../d").str(), "http://h:81/a/d");
  EXPECT_EQ(base.join("./d/").str(), "http://h:81/a/b/d/");
  EXPECT_EQ(base.join("?z=2").str(), "http://h:81/a/b/c?z=2");
  EXPECT_EQ(base.join("//other/p").str(), "http://other/p");
  EXPECT_EQ(base.join("https://s/p").str(), "https://s/p");
  EXPECT_THROW(base.join("/x\r\nSet-Cookie: a"), weave::http::InvalidURL);
}

// ---- basics, keep-alive -------------------------------------------------------------------------

weave::Coro<void> get_and_reuse(const PythonPeer& peer) {
  ClientSession session;
  for (int i = 0; i < 5; ++i) {
    ClientResponse r = co_await session.get(peer.url("/hello"));
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.reason(), "OK");
    EXPECT_EQ(r.version(), (std::pair<int, int>{1, 1}));
    EXPECT_EQ(r.header("content-type"), "text/plain");
    EXPECT_EQ(r.header("CONTENT-LENGTH"), "5");
    EXPECT_EQ(r.header("x-none"), std::nullopt);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(co_await r.text(), "hello");
    EXPECT_EQ(co_await r.read(), "hello");  // kept
    EXPECT_EQ(session.idle_connections(), 1U) << "read to the end: back in the pool";
  }
  ClientResponse stats = co_await session.get(peer.url("/stats"));
  auto counts = parse_stats(co_await stats.text());
  EXPECT_EQ(counts["connections"], 1) << "six requests over one kept-alive connection";
  EXPECT_EQ(counts["requests"], 6);
  EXPECT_EQ(session.open_connections(), 1U);
  co_await session.close();
  EXPECT_TRUE(session.closed());
  EXPECT_EQ(session.open_connections(), 0U);
  EXPECT_EQ(session.idle_connections(), 0U);
  EXPECT_THROW(co_await session.get(peer.url("/hello")), weave::RuntimeError);
}

TEST_F(HttpClient, GetsAndReusesOneKeptAliveConnection) {
  PythonPeer peer;
  run_bounded(get_and_reuse(peer));
}

weave::Coro<void> ipv6_literal(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse r = co_await session.get(peer.url("/headers"));
  EXPECT_EQ(r.url().host, "::1");
  const std::string sent = co_await r.text();
  EXPECT_NE(sent.find("host: [::1]:" + std::to_string(peer.port()) + "\n"), std::string::npos)
      << sent;
  co_await session.close();
}

TEST_F(HttpClient, GetsFromAnIpv6Literal) {
  PythonPeer peer(/*ipv6=*/true);
  run_bounded(ipv6_literal(peer));
}

weave::Coro<void> head_and_informational(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse h = co_await session.head(peer.url("/hello"));
  EXPECT_EQ(h.status(), 200);
  EXPECT_EQ(h.header("Content-Length"), "5");
  EXPECT_EQ(co_await h.read(), "") << "a response to HEAD has no body";
  ClientResponse c = co_await session.get(peer.url("/continue"));
  EXPECT_EQ(c.status(), 200) << "100 and 103 are skipped";
  EXPECT_EQ(c.header("Link"), std::nullopt);
  EXPECT_EQ(co_await c.text(), "after 1xx");
  ClientResponse after = co_await session.get(peer.url("/stats"));
  EXPECT_EQ(parse_stats(co_await after.text())["connections"], 1);
  co_await session.close();
}

TEST_F(HttpClient, HeadHasNoBodyAndInformationalResponsesAreSkipped) {
  PythonPeer peer;
  run_bounded(head_and_informational(peer));
}

weave::Coro<void> framings(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse chunked = co_await session.get(peer.url("/chunked?n=4"));
  EXPECT_EQ(chunked.header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(co_await chunked.text(), "chunk0;chunk1;chunk2;chunk3;");
  EXPECT_EQ(session.idle_connections(), 1U);

  ClientResponse until_close = co_await session.get(peer.url("/until-close"));
  EXPECT_EQ(co_await until_close.text(), "body delimited by the close");
  EXPECT_EQ(session.open_connections(), 0U) << "the closed one is not pooled";

  ClientResponse close = co_await session.get(peer.url("/close"));
  EXPECT_EQ(co_await close.text(), "closing");
  EXPECT_EQ(session.idle_connections(), 0U) << "Connection: close is not pooled";

  ClientResponse truncated = co_await session.get(peer.url("/truncated"));
  EXPECT_THROW(co_await truncated.read(), weave::http::ClientPayloadError);
  co_await session.close();
}

TEST_F(HttpClient, ReadsChunkedSizedAndCloseDelimitedBodies) {
  PythonPeer peer;
  run_bounded(framings(peer));
}

weave::Coro<void> decompression(const PythonPeer& peer) {
  ClientSession session;
  std::string expected;
  for (int i = 0; i < 3000; ++i) expected += "compressible text ";
  for (const char* path : {"/gzip?n=3000", "/deflate?n=3000", "/rawdeflate?n=3000"}) {
    ClientResponse r = co_await session.get(peer.url(path));
    EXPECT_TRUE(r.header("Content-Encoding").has_value()) << path;
    EXPECT_LT(std::stoul(std::string(*r.header("Content-Length"))), expected.size() / 10);
    EXPECT_EQ(co_await r.text(), expected) << path;
  }
  ClientResponse headers = co_await session.get(peer.url("/headers"));
  const std::string sent = co_await headers.text();
  EXPECT_NE(sent.find("accept-encoding: gzip, deflate\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("host: 127.0.0.1:" + std::to_string(peer.port()) + "\n"), std::string::npos);
  co_await session.close();

  ClientSessionOptions raw;
  raw.auto_decompress = false;
  ClientSession plain(raw);
  ClientResponse r = co_await plain.get(peer.url("/gzip?n=10"));
  const std::string body = co_await r.read();
  EXPECT_GE(body.size(), 2U);
  if (body.size() < 2) co_return;
  EXPECT_EQ(static_cast<unsigned char>(body[0]), 0x1f) << "gzip's magic, left undecoded";
  ClientResponse h = co_await plain.get(peer.url("/headers"));
  EXPECT_EQ((co_await h.text()).find("accept-encoding"), std::string::npos);
  co_await plain.close();
}

TEST_F(HttpClient, DecodesGzipAndDeflate) {
  PythonPeer peer;
  run_bounded(decompression(peer));
}

weave::Coro<void> large_gzip(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse r = co_await session.get(peer.url("/gzip?n=1000000"));  // 18 MB from ~50 kB
  EXPECT_LT(std::stoul(std::string(*r.header("Content-Length"))), std::size_t{1} << 20);
  const std::size_t baseline = allocated_bytes();
  std::size_t peak = 0;
  std::size_t total = 0;
  std::size_t mismatches = 0;
  const std::string unit = "compressible text ";
  for (;;) {
    std::string piece = co_await r.content().read(65536);
    if (piece.empty()) break;
    for (std::size_t i = 0; i < piece.size(); ++i) {
      mismatches += piece[i] != unit[(total + i) % unit.size()] ? 1 : 0;
    }
    total += piece.size();
    peak = std::max(peak, allocated_bytes());
  }
  EXPECT_EQ(total, unit.size() * 1000000);
  EXPECT_EQ(mismatches, 0U);
  EXPECT_LT(peak - std::min(peak, baseline), std::size_t{4} << 20)
      << "the decoded body is produced as it is read, not whole";
  co_await session.close();
}

TEST_F(HttpClient, DecodesALargeGzipBodyInBoundedMemory) {
  PythonPeer peer;
  run_bounded(large_gzip(peer), 30s);
}

weave::Coro<void> uploads(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse sized = co_await session.post(peer.url("/echo"), "sized body");
  EXPECT_EQ(sized.header("X-Method"), "POST");
  EXPECT_EQ(sized.header("X-Content-Length"), "10");
  EXPECT_EQ(sized.header("X-Transfer-Encoding"), "");
  EXPECT_EQ(co_await sized.text(), "sized body");

  std::string big(300000, 'b');
  RequestOptions as_chunks;
  as_chunks.chunked = true;
  ClientResponse chunked = co_await session.put(peer.url("/echo"), big, as_chunks);
  EXPECT_EQ(chunked.header("X-Transfer-Encoding"), "chunked");
  EXPECT_EQ(chunked.header("X-Method"), "PUT");
  EXPECT_EQ(co_await chunked.text(), big);

  int n = 0;
  RequestOptions streamed;
  streamed.body = [&n]() -> weave::Coro<std::optional<std::string>> {
    co_await weave::sleep(1ms);
    if (n == 5) co_return std::nullopt;
    co_return "piece" + std::to_string(n++) + ",";
  };
  ClientResponse produced = co_await session.request("POST", peer.url("/echo"), streamed);
  EXPECT_EQ(produced.header("X-Transfer-Encoding"), "chunked");
  EXPECT_EQ(co_await produced.text(), "piece0,piece1,piece2,piece3,piece4,");

  ClientResponse empty = co_await session.post(peer.url("/echo"), "");
  EXPECT_EQ(empty.header("X-Content-Length"), "0");
  EXPECT_EQ(co_await empty.text(), "");
  co_await session.close();
}

TEST_F(HttpClient, UploadsSizedAndChunkedBodies) {
  PythonPeer peer;
  run_bounded(uploads(peer));
}

weave::Coro<void> status_errors(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse missing = co_await session.get(peer.url("/status?code=404"));
  EXPECT_EQ(missing.status(), 404);
  EXPECT_FALSE(missing.ok());
  EXPECT_THROW(missing.raise_for_status(), weave::http::ClientResponseError);
  RequestOptions raising;
  raising.raise_for_status = true;
  int status = 0;
  try {
    ClientResponse r = co_await session.get(peer.url("/status?code=503"), raising);
  } catch (const weave::http::ClientResponseError& e) {
    status = e.status();
  }
  EXPECT_EQ(status, 503);
  co_await session.close();
}

TEST_F(HttpClient, RaiseForStatus) {
  PythonPeer peer;
  run_bounded(status_errors(peer));
}

// ---- header injection ---------------------------------------------------------------------------

weave::Coro<void> injection(const PythonPeer& peer) {
  ClientSession session;
  auto with_header = [](std::string name, std::string value) {
    RequestOptions o;
    o.headers.add(std::move(name), std::move(value));
    return o;
  };
  for (const char* value : {"a\r\nX-Injected: 1", "a\nb", "a\rb"}) {
    EXPECT_THROW(co_await session.get(peer.url("/headers"), with_header("X-Test", value)),
                 weave::ValueError);
  }
  EXPECT_THROW(
      co_await session.get(peer.url("/headers"), with_header("X-Test", std::string("a\0b", 3))),
      weave::ValueError);
  for (const char* name : {"X Bad", "X:Bad", "X\r\nBad", ""}) {
    EXPECT_THROW(co_await session.get(peer.url("/headers"), with_header(name, "v")),
                 weave::ValueError);
  }
  EXPECT_THROW(co_await session.get(peer.url("/headers\r\nX-Injected: 1")), weave::ValueError);
  EXPECT_THROW(co_await session.request("GET /x HTTP/1.1\r\n", peer.url("/")), weave::ValueError);
  ClientSessionOptions bad;
  bad.headers.add("X-Session", "a\r\nb");
  EXPECT_THROW(ClientSession{bad}, weave::ValueError);
  EXPECT_EQ(session.open_connections(), 0U) << "nothing was sent, no connection made";
  co_await session.close();
  auto stats = co_await peer_stats(peer);
  EXPECT_EQ(stats["connections"], 1);
  EXPECT_EQ(stats["requests"], 1) << "only the stats request reached the server";
}

TEST_F(HttpClient, RefusesCrLfAndNulInHeadersAndUrls) {
  PythonPeer peer;
  run_bounded(injection(peer));
}

}  // namespace

// weave::http's client against real servers it starts itself: Python's http.server
// (support/http_peer.py: keep-alive, chunked, gzip, redirects, stalls, stale connections) and
// nginx (keep-alive counted by stub_status, gzip, a large file, https with a test CA). Each test
// checks the fd count is unchanged; every wait is bounded.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
// ASan's allocator statistics (its sanitizer/allocator_interface.h is not installed with g++).
#include <cstddef>
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/http_peers.hpp"
#include "support/steps.hpp"
#include "support/tls_certs.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::http::ClientResponse;
using weave::http::ClientSession;
using weave::http::ClientSessionOptions;
using weave::http::RequestOptions;
using weave::http::URL;
using weave_test::NginxPeer;
using weave_test::PythonPeer;
using weave_test::run_bounded;

namespace {

class HttpClient : public weave_test::FdLeakCheck {};

/// "key=value" pairs of the Python peer's /stats (or anything in that shape).
std::map<std::string, long> parse_stats(const std::string& text) {
  std::map<std::string, long> out;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    const std::size_t eq = item.find('=');
    if (eq != std::string::npos) out[item.substr(0, eq)] = std::stol(item.substr(eq + 1));
  }
  return out;
}

/// The Python peer's counters, fetched on a session of their own.
weave::Coro<std::map<std::string, long>> peer_stats(const PythonPeer& peer) {
  ClientSession s;
  ClientResponse r = co_await s.get(peer.url("/stats"));
  std::string text = co_await r.text();
  co_await s.close();
  co_return parse_stats(text);
}

/// nginx's stub_status "accepts" (connections accepted so far).
weave::Coro<long> nginx_accepts(const NginxPeer& nginx) {
  ClientSession s;
  ClientResponse r = co_await s.get(nginx.url("/status"));
  std::string text = co_await r.text();
  co_await s.close();
  // "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
  std::istringstream in(text.substr(text.find("requests") + 8));
  long accepts = 0;
  in >> accepts;
  co_return accepts;
}

std::size_t allocated_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

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

// ---- the pool -----------------------------------------------------------------------------------

weave::Coro<void> per_host_limit(const PythonPeer& peer) {
  ClientSessionOptions opts;
  opts.connector.limit_per_host = 5;
  ClientSession session(opts);
  std::size_t most_open = 0;
  int ok = 0;
  // Named: a coroutine lambda must outlive the tasks running it.
  auto one = [&]() -> weave::Coro<void> {
    ClientResponse r = co_await session.get(peer.url("/slow?ms=20"));
    most_open = std::max(most_open, session.open_connections());
    if (co_await r.text() == "slow") ++ok;
  };
  std::vector<weave::Task<void>> tasks;
  for (int i = 0; i < 50; ++i) tasks.push_back(weave::create_task(one()));
  for (auto& t : tasks) co_await t;
  EXPECT_EQ(ok, 50);
  EXPECT_LE(most_open, 5U);
  auto stats = co_await peer_stats(peer);
  EXPECT_EQ(stats["requests"], 51);
  EXPECT_LE(stats["max_open"], 6) << "five of ours and the stats session's";
  EXPECT_EQ(stats["connections"], 6) << "five kept alive for the 50 requests, and one for /stats";
  co_await session.close();
}

TEST_F(HttpClient, PerHostLimitHoldsUnderFiftyConcurrentGets) {
  PythonPeer peer;
  run_bounded(per_host_limit(peer), 30s);
}

weave::Coro<void> total_limit(const PythonPeer& a, const PythonPeer& b) {
  ClientSessionOptions opts;
  opts.connector.limit = 2;
  ClientSession session(opts);
  std::size_t most_open = 0;
  auto one = [&](const PythonPeer& peer) -> weave::Coro<void> {
    ClientResponse r = co_await session.get(peer.url("/slow?ms=10"));
    most_open = std::max(most_open, session.open_connections());
    EXPECT_EQ(co_await r.text(), "slow");
  };
  std::vector<weave::Task<void>> tasks;
  for (int i = 0; i < 12; ++i) tasks.push_back(weave::create_task(one(i % 2 == 0 ? a : b)));
  for (auto& t : tasks) co_await t;
  EXPECT_LE(most_open, 2U);
  // At the limit, an idle connection to the other host gives way.
  ClientResponse ra = co_await session.get(a.url("/hello"));
  co_await ra.read();
  ClientResponse rb = co_await session.get(b.url("/hello"));
  co_await rb.read();
  EXPECT_LE(session.open_connections(), 2U);
  co_await session.close();
}

TEST_F(HttpClient, TotalLimitHoldsAcrossHosts) {
  PythonPeer a;
  PythonPeer b;
  run_bounded(total_limit(a, b), 30s);
}

weave::Coro<void> stale_retry(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse first = co_await session.get(peer.url("/stale"));
  EXPECT_EQ(co_await first.text(), "fresh");
  // The server closes the pooled connection as the next request arrives, unanswered: a GET is
  // sent again once on a new connection.
  ClientResponse again = co_await session.get(peer.url("/stale"));
  EXPECT_EQ(co_await again.text(), "fresh");
  EXPECT_EQ((co_await peer_stats(peer))["connections"], 3) << "two of ours, one for /stats";

  co_await session.close();

  ClientSession posting;  // a fresh connection for the first POST, pooled for the second
  ClientResponse post = co_await posting.post(peer.url("/stale"), "x");
  EXPECT_EQ(co_await post.text(), "fresh");
  bool refused = false;
  try {
    ClientResponse lost = co_await posting.post(peer.url("/stale"), "x");
  } catch (const weave::http::ServerDisconnectedError&) {
    refused = true;
  }
  EXPECT_TRUE(refused) << "a POST is not sent twice";
  auto stats = co_await peer_stats(peer);
  EXPECT_EQ(stats["connections"], 5) << "the POST was not retried on a new connection";
  EXPECT_EQ(posting.open_connections(), 0U);
  co_await posting.close();
}

TEST_F(HttpClient, StaleConnectionRetriedOnceForGetNotForPost) {
  PythonPeer peer;
  run_bounded(stale_retry(peer));
}

weave::Coro<void> release_semantics(const PythonPeer& peer) {
  ClientSession session;
  ClientResponse big = co_await session.get(peer.url("/big?bytes=4000000"));
  EXPECT_EQ((co_await big.content().read(10)).size(), 10U);
  big.release();
  EXPECT_EQ(session.open_connections(), 0U) << "unread body: closed, not pooled";
  EXPECT_EQ(session.idle_connections(), 0U);
  {
    ClientResponse dropped = co_await session.get(peer.url("/big?bytes=100000"));
  }  // destroyed unread: closed too
  EXPECT_EQ(session.open_connections(), 0U);
  ClientResponse whole = co_await session.get(peer.url("/big?bytes=100000"));
  EXPECT_EQ((co_await whole.read()).size(), 100000U);
  EXPECT_EQ(session.idle_connections(), 1U);
  EXPECT_EQ((co_await peer_stats(peer))["connections"], 4);
  co_await session.close();
}

TEST_F(HttpClient, ReleasedUnreadResponseClosesItsConnection) {
  PythonPeer peer;
  run_bounded(release_semantics(peer));
}

weave::Coro<void> refused_connection(std::uint16_t port) {
  ClientSession session;
  bool refused = false;
  try {
    ClientResponse r = co_await session.get("http://127.0.0.1:" + std::to_string(port) + "/");
  } catch (const std::system_error& e) {
    refused = e.code().value() == ECONNREFUSED;
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(session.open_connections(), 0U);
  co_await session.close();
}

TEST_F(HttpClient, ConnectionRefusedIsReported) {
  run_bounded(refused_connection(weave_test::free_port()));
}

weave::Coro<void> cancelled_request(const PythonPeer& peer) {
  ClientSession session;
  auto stalled = [&]() -> weave::Coro<void> {
    ClientResponse r = co_await session.get(peer.url("/stall?ms=3000"));
  };
  weave::Task<void> task = weave::create_task(stalled());
  co_await weave::sleep(100ms);
  EXPECT_EQ(session.open_connections(), 1U);
  task.cancel();
  EXPECT_THROW(co_await task, weave::CancelledError);
  EXPECT_EQ(session.open_connections(), 0U) << "the cancelled exchange closed its connection";
  ClientResponse after = co_await session.get(peer.url("/hello"));
  EXPECT_EQ(co_await after.text(), "hello");
  co_await session.close();
}

TEST_F(HttpClient, CancelledRequestClosesItsConnection) {
  PythonPeer peer;
  run_bounded(cancelled_request(peer));
}

weave::Coro<void> unclosed_session(const PythonPeer& peer) {
  const int fds = weave_test::open_fd_count();
  {
    ClientSession session;
    ClientResponse r = co_await session.get(peer.url("/hello"));
    EXPECT_EQ(co_await r.text(), "hello");
    EXPECT_EQ(session.idle_connections(), 1U);
  }  // not closed: its pooled connection is aborted
  co_await weave_test::until([&] { return weave_test::open_fd_count() <= fds; });
  EXPECT_EQ(weave_test::open_fd_count(), fds);
}

TEST_F(HttpClient, SessionDestroyedWithoutCloseLeavesNoFd) {
  PythonPeer peer;
  run_bounded(unclosed_session(peer));
}

// ---- timeouts -----------------------------------------------------------------------------------

/// A listener that accepts nothing, its backlog already full: further connects hang in SYN.
class FullBacklog {
 public:
  FullBacklog() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 0), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < 4; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      (void)::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers_.push_back(c);
    }
  }
  ~FullBacklog() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  std::uint16_t port() const noexcept { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> fillers_;
};

weave::Coro<void> timeouts(const PythonPeer& peer, std::uint16_t blackhole) {
  ClientSession session;
  RequestOptions connect;
  connect.timeout = weave::http::ClientTimeout{std::nullopt, 200ms, std::nullopt};
  auto start = weave::Clock::now();
  EXPECT_THROW(co_await session.get("http://127.0.0.1:" + std::to_string(blackhole) + "/", connect),
               weave::http::ConnectionTimeoutError);
  EXPECT_LT(weave::Clock::now() - start, 2s);
  EXPECT_EQ(session.open_connections(), 0U);

  RequestOptions read;
  read.timeout = weave::http::ClientTimeout{std::nullopt, std::nullopt, 200ms};
  start = weave::Clock::now();
  EXPECT_THROW(co_await session.get(peer.url("/stall?ms=3000"), read),
               weave::http::SocketTimeoutError);
  EXPECT_LT(weave::Clock::now() - start, 2s);
  EXPECT_EQ(session.open_connections(), 0U) << "a timed-out exchange closes its connection";

  ClientResponse body = co_await session.get(peer.url("/stall-body?ms=3000"), read);
  EXPECT_EQ(co_await body.content().read(5), "12345");
  EXPECT_THROW(co_await body.content().read(5), weave::http::SocketTimeoutError);
  body.release();

  RequestOptions total;
  total.timeout = weave::http::ClientTimeout{300ms, std::nullopt, std::nullopt};
  start = weave::Clock::now();
  bool timed_out = false;
  try {
    ClientResponse r = co_await session.get(peer.url("/stall?ms=3000"), total);
  } catch (const weave::http::SocketTimeoutError&) {
  } catch (const weave::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_LT(weave::Clock::now() - start, 2s);
  EXPECT_EQ(session.open_connections(), 0U);
  co_await session.close();
}

TEST_F(HttpClient, ConnectReadAndTotalTimeouts) {
  PythonPeer peer;
  FullBacklog blackhole;
  run_bounded(timeouts(peer, blackhole.port()), 20s);
}

// ---- redirects ----------------------------------------------------------------------------------

weave::Coro<void> redirects(const PythonPeer& a, const PythonPeer& b) {
  ClientSession session;
  ClientResponse chain = co_await session.get(a.url("/chain?n=10"));
  EXPECT_EQ(co_await chain.text(), "end of chain");
  EXPECT_EQ(chain.history().size(), 10U);
  EXPECT_EQ(chain.history().front(), (std::pair<int, std::string>{302, a.url("/chain?n=10")}));
  EXPECT_EQ(chain.url().str(), a.url("/chain?n=0"));

  bool too_many = false;
  try {
    ClientResponse r = co_await session.get(a.url("/chain?n=11"));
  } catch (const weave::http::TooManyRedirects& e) {
    too_many = e.status() == 302;
  }
  EXPECT_TRUE(too_many) << "at most 10 redirects";
  RequestOptions two;
  two.max_redirects = 2;
  EXPECT_THROW(co_await session.get(a.url("/chain?n=3"), two), weave::http::TooManyRedirects);
  RequestOptions no_follow;
  no_follow.allow_redirects = false;
  ClientResponse kept = co_await session.get(a.url("/chain?n=3"), no_follow);
  EXPECT_EQ(kept.status(), 302);
  EXPECT_EQ(kept.header("Location"), "/chain?n=2");

  // 303 turns a POST into a GET without body; 307 and 308 keep both.
  ClientResponse see_other = co_await session.post(a.url("/redirect?code=303&to=/method"), "body!");
  EXPECT_EQ(co_await see_other.text(), "GET 0");
  ClientResponse temporary = co_await session.post(a.url("/redirect?code=307&to=/method"), "body!");
  EXPECT_EQ(co_await temporary.text(), "POST 5");
  ClientResponse permanent = co_await session.put(a.url("/redirect?code=308&to=/method"), "abc");
  EXPECT_EQ(co_await permanent.text(), "PUT 3");

  // Credentials and cookies stay with their origin.
  RequestOptions secret;
  secret.headers.add("Authorization", "Bearer secret");
  secret.headers.add("Cookie", "session=1");
  secret.headers.add("X-Custom", "kept");
  ClientResponse same = co_await session.get(a.url("/redirect?to=/headers"), secret);
  const std::string same_headers = co_await same.text();
  EXPECT_NE(same_headers.find("authorization: Bearer secret\n"), std::string::npos);
  EXPECT_NE(same_headers.find("cookie: session=1\n"), std::string::npos);
  ClientResponse other = co_await session.get(a.url("/redirect?to=" + b.url("/headers")), secret);
  const std::string other_headers = co_await other.text();
  EXPECT_EQ(other.url().port, b.port());
  EXPECT_EQ(other_headers.find("authorization"), std::string::npos) << other_headers;
  EXPECT_EQ(other_headers.find("cookie"), std::string::npos) << other_headers;
  EXPECT_NE(other_headers.find("x-custom: kept\n"), std::string::npos);
  co_await session.close();
}

TEST_F(HttpClient, FollowsRedirectsAndDropsCredentialsAcrossOrigins) {
  PythonPeer a;
  PythonPeer b;
  run_bounded(redirects(a, b), 20s);
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

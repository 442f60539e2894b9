// weave::http's client pool and failure paths against Python's http.server
// (support/http_peer.py): per-host and total limits, a stale connection retried once for GET and
// not for POST, released and cancelled responses, connect/read/total timeouts, redirects. Each
// test checks the fd count is unchanged; every wait is bounded.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/http_client.hpp"
#include "support/http_peers.hpp"
#include "support/steps.hpp"
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

}  // namespace

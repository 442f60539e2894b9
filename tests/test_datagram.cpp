// Datagram endpoints (asyncio's create_datagram_endpoint) over UDP, on both backends: echo and
// order, connected and unconnected sendto and their address checks, empty and large datagrams,
// many datagrams without loss, ICMP errors reaching error_received, the extra info, close and
// abort, buffering and flow control when the kernel says EAGAIN (a Unix datagram socketpair,
// since loopback UDP never blocks), IPv6, names through getaddrinfo and bad addresses; the fd
// count is unchanged by each test.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/steps.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
using weave_test::until;

namespace {

class Datagrams : public weave_test::FdLeakCheck {};

struct Received {
  std::string data;
  weave::SocketAddress from;
};

/// Records every call, and echoes each datagram to its sender when asked to.
class Recorder : public weave::DatagramProtocol {
 public:
  explicit Recorder(bool echo = false) : echo_(echo) {}
  void connection_made(weave::DatagramTransport& t) override {
    transport = &t;
    events.push_back("made");
  }
  void datagram_received(std::string_view data, const weave::SocketAddress& addr) override {
    received.push_back(Received{std::string(data), addr});
    if (echo_) transport->sendto(data, addr);
  }
  void error_received(std::exception_ptr exc) override {
    events.push_back("error");
    errors.push_back(exc);
  }
  void connection_lost(std::exception_ptr exc) override {
    events.push_back(exc ? "lost with error" : "lost");
    lost.set();
  }
  void pause_writing() override { events.push_back("pause"); }
  void resume_writing() override { events.push_back("resume"); }

  /// Waits until connection_lost ran.
  weave::Coro<void> wait_lost() { co_await lost.wait(); }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const Received& r : received) out.push_back(r.data);
    return out;
  }

  weave::DatagramTransport* transport = nullptr;
  std::vector<std::string> events;
  std::vector<Received> received;
  std::vector<std::exception_ptr> errors;
  weave::Event lost;

 private:
  bool echo_;
};

/// Lets the loop run a few iterations, for asserting that something did not happen.
weave::Coro<void> settle() {
  for (int i = 0; i < 20; ++i) co_await weave::sleep(1ms);
}

int error_code(const std::exception_ptr& exc) {
  try {
    std::rethrow_exception(exc);
  } catch (const std::system_error& e) {
    return e.code().value();
  } catch (...) {
    return -1;
  }
}

/// An endpoint and the recorder it was made with.
struct Endpoint {
  std::shared_ptr<weave::DatagramTransport> transport;
  std::shared_ptr<Recorder> side;
};

/// What create_datagram_endpoint returns with `opts`, the protocol being a new Recorder.
weave::Coro<Endpoint> endpoint(weave::DatagramEndpointOptions opts, bool echo = false) {
  auto protocol = std::make_shared<Recorder>(echo);
  const weave::DatagramProtocolFactory factory = [protocol] { return protocol; };
  weave::DatagramEndpoint e =
      co_await weave::get_running_loop().create_datagram_endpoint(factory, std::move(opts));
  co_return Endpoint{e.transport, protocol};
}

template <class E>
weave::SocketAddress sockname(const E& e) {
  return std::any_cast<weave::SocketAddress>(e.transport->get_extra_info("sockname"));
}

/// An endpoint bound to `host`, port 0.
weave::Coro<Endpoint> bound(std::string host, bool echo = false, int family = 0) {
  weave::DatagramEndpointOptions opts;
  opts.local_addr = weave::HostPort(std::move(host), 0);
  opts.family = family;
  co_return co_await endpoint(opts, echo);
}

/// An endpoint connected to `host`:`port`.
weave::Coro<Endpoint> connected_to(std::string host, std::uint16_t port, int family = 0) {
  weave::DatagramEndpointOptions opts;
  opts.remote_addr = weave::HostPort(std::move(host), port);
  opts.family = family;
  co_return co_await endpoint(opts);
}

weave::Coro<Endpoint> connected_to(weave::SocketAddress remote) {
  co_return co_await connected_to(remote.host(), remote.port());
}

/// Closes the endpoint and waits for its connection_lost.
template <class E>
weave::Coro<void> shut(const E& e, Recorder& r) {
  e.transport->close();
  co_await r.wait_lost();
}

/// A server bound on 127.0.0.1 and a client connected to it.
struct Link {
  Endpoint server;
  Endpoint client;
};

weave::Coro<Link> link(bool echo = false) {
  Endpoint server = co_await bound("127.0.0.1", echo);
  Endpoint client = co_await connected_to(sockname(server));
  co_return Link{server, client};
}

/// Closes the client, then the server, each after its connection_lost.
weave::Coro<void> shut(const Link& l) {
  co_await shut(l.client, *l.client.side);
  co_await shut(l.server, *l.server.side);
}

/// A UDP port on 127.0.0.1 that nobody listens on (bound, then released).
std::uint16_t closed_udp_port() {
  weave::Socket probe(AF_INET, SOCK_DGRAM);
  probe.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  return probe.getsockname().port();
}

// ---- exchanges ------------------------------------------------------------------------------

weave::Coro<void> echo_with_connected_client() {
  Endpoint server = co_await bound("127.0.0.1", true);
  const weave::SocketAddress server_addr = sockname(server);
  Endpoint client = co_await connected_to(server_addr);
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made"}));  // before the return
  EXPECT_EQ(client.side->transport, client.transport.get());
  client.transport->sendto("one");
  client.transport->sendto("two");
  client.transport->sendto("three", server_addr);  // the connected address may be named
  co_await until([&] { return client.side->received.size() >= 3; });
  EXPECT_EQ(client.side->payloads(), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(server.side->payloads(), (std::vector<std::string>{"one", "two", "three"}));
  const weave::SocketAddress client_addr = sockname(client);
  for (const Received& r : server.side->received) {
    EXPECT_EQ(r.from.to_string(), client_addr.to_string());
  }
  for (const Received& r : client.side->received) {
    EXPECT_EQ(r.from.to_string(), server_addr.to_string());
  }
  EXPECT_TRUE(client.side->errors.empty());
  co_await shut(client, *client.side);
  co_await shut(server, *server.side);
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made", "lost"}));
  EXPECT_EQ(server.side->events, (std::vector<std::string>{"made", "lost"}));
}

TEST_F(Datagrams, EchoBetweenServerAndConnectedClient) {
  run_bounded(echo_with_connected_client());
}

weave::Coro<void> unconnected_sendto() {
  Endpoint a = co_await bound("127.0.0.1");
  Endpoint b = co_await bound("127.0.0.1");
  a.transport->sendto("ping", sockname(b));
  co_await until([&] { return !b.side->received.empty(); });
  EXPECT_EQ(b.side->received.size(), 1U);
  EXPECT_EQ(b.side->received.at(0).data, "ping");
  EXPECT_EQ(b.side->received.at(0).from.port(), sockname(a).port());
  b.transport->sendto("pong", b.side->received.at(0).from);
  co_await until([&] { return !a.side->received.empty(); });
  EXPECT_EQ(a.side->payloads(), (std::vector<std::string>{"pong"}));
  co_await shut(a, *a.side);
  co_await shut(b, *b.side);
}

TEST_F(Datagrams, UnconnectedSendtoAnAddress) {
  run_bounded(unconnected_sendto());
}

weave::Coro<void> sendto_needs_an_address() {
  Endpoint e = co_await bound("127.0.0.1");
  EXPECT_THROW(e.transport->sendto("nowhere"), weave::ValueError);
  EXPECT_EQ(e.transport->get_write_buffer_size(), 0U);
  EXPECT_FALSE(e.transport->is_closing());
  co_await shut(e, *e.side);
}

TEST_F(Datagrams, SendtoWithoutAddressOnUnconnectedIsValueError) {
  run_bounded(sendto_needs_an_address());
}

weave::Coro<void> sendto_wrong_address() {
  Endpoint server = co_await bound("127.0.0.1");
  Endpoint other = co_await bound("127.0.0.1");
  Endpoint client = co_await connected_to(sockname(server));
  EXPECT_THROW(client.transport->sendto("astray", sockname(other)), weave::ValueError);
  client.transport->sendto("right");
  co_await until([&] { return !server.side->received.empty(); });
  co_await settle();
  EXPECT_EQ(server.side->payloads(), (std::vector<std::string>{"right"}));
  EXPECT_TRUE(other.side->received.empty());
  co_await shut(client, *client.side);
  co_await shut(other, *other.side);
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, SendtoAnotherAddressOnConnectedIsValueError) {
  run_bounded(sendto_wrong_address());
}

weave::Coro<void> empty_and_large() {
  Link l = co_await link(true);
  Endpoint& server = l.server;
  Endpoint& client = l.client;
  std::string large(60 * 1024, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>('a' + i % 26);
  client.transport->sendto("");
  client.transport->sendto(large);
  client.transport->sendto("after");
  co_await until([&] { return client.side->received.size() >= 3; });
  EXPECT_EQ(client.side->received.size(), 3U);
  EXPECT_EQ(client.side->received.at(0).data, "");
  EXPECT_EQ(client.side->received.at(1).data.size(), large.size());
  EXPECT_EQ(client.side->received.at(1).data, large);
  EXPECT_EQ(client.side->received.at(2).data, "after");
  EXPECT_EQ(server.side->received.size(), 3U);
  co_await shut(l);
}

TEST_F(Datagrams, EmptyAnd60KiBDatagrams) {
  run_bounded(empty_and_large());
}

weave::Coro<void> many_in_order() {
  Link l = co_await link();
  Endpoint& server = l.server;
  Endpoint& client = l.client;
  // Batches small enough for the receive buffer: loopback drops only what does not fit there.
  constexpr int kTotal = 1000;
  constexpr int kBatch = 50;
  for (int sent = 0; sent < kTotal;) {
    for (int i = 0; i < kBatch; ++i, ++sent) client.transport->sendto(std::to_string(sent));
    co_await until([&] { return server.side->received.size() >= static_cast<std::size_t>(sent); });
  }
  EXPECT_EQ(server.side->received.size(), static_cast<std::size_t>(kTotal));
  for (int i = 0; i < kTotal; ++i) EXPECT_EQ(server.side->received.at(i).data, std::to_string(i));
  EXPECT_EQ(client.transport->get_write_buffer_size(), 0U);
  co_await shut(l);
}

TEST_F(Datagrams, AThousandDatagramsInOrderWithNoneLost) {
  run_bounded(many_in_order());
}

weave::Coro<void> refused_goes_to_error_received() {
  const std::uint16_t port = closed_udp_port();
  Endpoint client = co_await connected_to("127.0.0.1", port);
  client.transport->sendto("anyone?");
  co_await until([&] { return !client.side->errors.empty(); });
  EXPECT_EQ(client.side->errors.size(), 1U);
  EXPECT_EQ(error_code(client.side->errors.at(0)), ECONNREFUSED);
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made", "error"}));
  EXPECT_FALSE(client.transport->is_closing());
  // Still usable: once someone listens there, datagrams go through both ways.
  Endpoint server = co_await bound("127.0.0.1", true);
  server.transport->close();
  co_await server.side->wait_lost();
  weave::DatagramEndpointOptions opts;
  opts.local_addr = weave::HostPort("127.0.0.1", port);
  Endpoint listener = co_await endpoint(opts, true);
  client.transport->sendto("now?");
  co_await until([&] { return !client.side->received.empty(); });
  EXPECT_EQ(listener.side->payloads(), (std::vector<std::string>{"now?"}));
  EXPECT_EQ(client.side->payloads(), (std::vector<std::string>{"now?"}));
  EXPECT_EQ(client.side->errors.size(), 1U);
  co_await shut(listener, *listener.side);
  co_await shut(client, *client.side);
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made", "error", "lost"}));
}

TEST_F(Datagrams, ConnectionRefusedReachesErrorReceivedAndTheTransportGoesOn) {
  run_bounded(refused_goes_to_error_received());
}

weave::Coro<void> only_family() {
  Endpoint server = co_await bound("127.0.0.1");
  weave::DatagramEndpointOptions opts;
  opts.family = AF_INET;
  Endpoint e = co_await endpoint(opts);
  e.transport->sendto("unbound", sockname(server));
  co_await until([&] { return !server.side->received.empty(); });
  EXPECT_EQ(server.side->payloads(), (std::vector<std::string>{"unbound"}));
  EXPECT_NE(sockname(e).port(), 0);  // the kernel bound it on the first send
  co_await shut(e, *e.side);
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, AFamilyAloneMakesAnUnboundSocket) {
  run_bounded(only_family());
}

// ---- extra info, close, abort ---------------------------------------------------------------

weave::Coro<void> extra_info() {
  Link l = co_await link();
  Endpoint& server = l.server;
  Endpoint& client = l.client;
  const weave::ExtraInfo name = server.transport->get_extra_info("sockname");
  EXPECT_EQ(name.host(), "127.0.0.1");
  EXPECT_NE(name.port(), 0);
  EXPECT_FALSE(server.transport->get_extra_info("peername").has_value());
  EXPECT_EQ(client.transport->get_extra_info("peername").host(), "127.0.0.1");
  EXPECT_EQ(client.transport->get_extra_info("peername").port(), name.port());
  EXPECT_EQ(client.transport->get_extra_info("sockname").host(), "127.0.0.1");
  EXPECT_GE(std::any_cast<int>(client.transport->get_extra_info("socket")), 0);
  EXPECT_FALSE(client.transport->get_extra_info("no such thing").has_value());
  EXPECT_EQ(client.transport->get_write_buffer_limits(),
            (std::pair<std::size_t, std::size_t>{16 * 1024, 64 * 1024}));
  EXPECT_THROW(client.transport->set_write_buffer_limits(10, 20), weave::ValueError);
  EXPECT_EQ(&client.transport->get_protocol(), client.side.get());
  auto replacement = std::make_shared<Recorder>();
  client.transport->set_protocol(replacement);
  EXPECT_EQ(&client.transport->get_protocol(), replacement.get());
  EXPECT_THROW(client.transport->set_protocol(nullptr), weave::ValueError);
  co_await shut(client, *replacement);
  // Asked for while open, the addresses still answer once the socket is closed.
  EXPECT_EQ(client.transport->get_extra_info("peername").port(), name.port());
  EXPECT_EQ(client.transport->get_extra_info("sockname").host(), "127.0.0.1");
  EXPECT_EQ(replacement->events, (std::vector<std::string>{"lost"}));
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made"}));
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, ExtraInfoLimitsAndProtocol) {
  run_bounded(extra_info());
}

weave::Coro<void> close_once() {
  Link l = co_await link();
  Endpoint& server = l.server;
  Endpoint& client = l.client;
  client.transport->close();
  EXPECT_TRUE(client.transport->is_closing());
  client.transport->close();
  client.transport->sendto("after close");  // ignored, as asyncio's writes after close
  EXPECT_EQ(client.transport->get_write_buffer_size(), 0U);
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made"}));  // lost comes later
  co_await client.side->wait_lost();
  client.transport->sendto("after lost");
  client.transport->abort();
  co_await settle();
  EXPECT_EQ(client.side->events, (std::vector<std::string>{"made", "lost"}));
  EXPECT_FALSE(client.transport->get_extra_info("sockname").has_value());  // the socket is gone
  EXPECT_TRUE(server.side->received.empty());
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, CloseCallsConnectionLostOnceAndIgnoresLaterSends) {
  run_bounded(close_once());
}

weave::Coro<void> abort_at_once() {
  Endpoint e = co_await bound("127.0.0.1");
  e.transport->abort();
  EXPECT_TRUE(e.transport->is_closing());
  e.transport->abort();
  e.transport->close();
  co_await e.side->wait_lost();
  co_await settle();
  EXPECT_EQ(e.side->events, (std::vector<std::string>{"made", "lost"}));
}

TEST_F(Datagrams, AbortCallsConnectionLostOnce) {
  run_bounded(abort_at_once());
}

weave::Coro<void> left_open() {
  Endpoint e = co_await bound("127.0.0.1");
  EXPECT_EQ(e.side->events, (std::vector<std::string>{"made"}));
}

TEST_F(Datagrams, AnEndpointLeftOpenIsClosedWithTheLoop) {
  run_bounded(left_open());  // the fd check of the fixture is the assertion
}

weave::Coro<void> cancelled_while_starting() {
  auto& loop = weave::get_running_loop();
  auto protocol = std::make_shared<Recorder>();
  const weave::DatagramProtocolFactory factory = [protocol] { return protocol; };
  weave::DatagramEndpointOptions opts;
  opts.local_addr = weave::HostPort("127.0.0.1", 0);
  weave::Task<weave::DatagramEndpoint> task =
      loop.create_task(loop.create_datagram_endpoint(factory, opts));
  co_await weave_test::yield();  // the task made the transport and waits for connection_made
  task.cancel();
  bool cancelled = false;
  try {
    co_await task;
  } catch (const weave::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  co_await protocol->wait_lost();
  EXPECT_EQ(protocol->events, (std::vector<std::string>{"made", "lost"}));
}

TEST_F(Datagrams, CancellingTheCreationClosesTheTransport) {
  run_bounded(cancelled_while_starting());
}

// ---- buffering on EAGAIN (a Unix datagram socketpair blocks when its peer's queue is full) ----

struct Pair {
  weave::Socket ours;
  weave::Socket theirs;
};

Pair datagram_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  return Pair{weave::Socket::adopt(fds[0]), weave::Socket::adopt(fds[1])};
}

/// Sends 1 KiB datagrams numbered from 0 until `count` of them are buffered; returns how many
/// went out at once.
int fill(weave::DatagramTransport& t, int count, std::vector<std::string>& sent) {
  int immediate = 0;
  for (int buffered = 0; buffered < count && sent.size() < 100000;) {
    std::string d = std::to_string(sent.size());
    d.resize(1024, '.');
    const bool was_empty = t.get_write_buffer_size() == 0;
    t.sendto(d);
    sent.push_back(std::move(d));
    if (t.get_write_buffer_size() > 0) {
      ++buffered;
    } else if (was_empty) {
      ++immediate;
    }
  }
  return immediate;
}

/// Everything queued at `fd` now.
std::vector<std::string> drain(int fd) {
  std::vector<std::string> out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) break;
    out.emplace_back(buf, static_cast<std::size_t>(n));
  }
  return out;
}

weave::Coro<void> buffering_and_flow_control() {
  Pair pair = datagram_pair();
  const int peer = pair.theirs.fd();
  auto protocol = std::make_shared<Recorder>();
  const weave::DatagramProtocolFactory factory = [protocol] { return protocol; };
  weave::DatagramEndpoint e =
      co_await weave::get_running_loop().create_datagram_endpoint(factory, std::move(pair.ours));
  e.transport->set_write_buffer_limits(8 * 1024);
  EXPECT_EQ(e.transport->get_write_buffer_limits(),
            (std::pair<std::size_t, std::size_t>{2 * 1024, 8 * 1024}));
  std::vector<std::string> sent;
  const int immediate = fill(*e.transport, 10, sent);
  EXPECT_GT(immediate, 0);
  EXPECT_EQ(sent.size(), static_cast<std::size_t>(immediate) + 10);
  EXPECT_EQ(e.transport->get_write_buffer_size(), 10 * (1024 + 8U));  // asyncio's 8 per datagram
  EXPECT_EQ(protocol->events, (std::vector<std::string>{"made", "pause"}));
  std::vector<std::string> got;
  while (got.size() < sent.size()) {
    for (std::string& d : drain(peer)) got.push_back(std::move(d));
    co_await weave::sleep(1ms);
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(e.transport->get_write_buffer_size(), 0U);
  EXPECT_EQ(protocol->events, (std::vector<std::string>{"made", "pause", "resume"}));
  // close() flushes what is buffered before connection_lost.
  sent.clear();
  fill(*e.transport, 3, sent);
  e.transport->close();
  e.transport->sendto("ignored");
  got.clear();
  while (protocol->events.back() != "lost") {
    for (std::string& d : drain(peer)) got.push_back(std::move(d));
    co_await weave::sleep(1ms);
  }
  for (std::string& d : drain(peer)) got.push_back(std::move(d));
  EXPECT_EQ(got, sent);
  EXPECT_EQ(protocol->events, (std::vector<std::string>{"made", "pause", "resume", "lost"}));
}

TEST_F(Datagrams, BuffersOnEagainWithFlowControlAndCloseFlushes) {
  run_bounded(buffering_and_flow_control());
}

weave::Coro<void> abort_drops_the_buffer() {
  Pair pair = datagram_pair();
  const int peer = pair.theirs.fd();
  auto protocol = std::make_shared<Recorder>();
  const weave::DatagramProtocolFactory factory = [protocol] { return protocol; };
  weave::DatagramEndpoint e =
      co_await weave::get_running_loop().create_datagram_endpoint(factory, std::move(pair.ours));
  std::vector<std::string> sent;
  const int immediate = fill(*e.transport, 5, sent);
  EXPECT_GT(e.transport->get_write_buffer_size(), 0U);
  e.transport->abort();
  EXPECT_EQ(e.transport->get_write_buffer_size(), 0U);
  co_await protocol->wait_lost();
  const std::vector<std::string> got = drain(peer);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(immediate));
  EXPECT_EQ(protocol->events, (std::vector<std::string>{"made", "lost"}));
}

TEST_F(Datagrams, AbortDropsTheBuffer) {
  run_bounded(abort_drops_the_buffer());
}

weave::Coro<void> stream_socket_refused() {
  weave::Socket tcp(AF_INET, SOCK_STREAM);
  const weave::DatagramProtocolFactory factory = [] { return std::make_shared<Recorder>(); };
  bool refused = false;
  try {
    co_await weave::get_running_loop().create_datagram_endpoint(factory, std::move(tcp));
  } catch (const weave::ValueError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
}

TEST_F(Datagrams, AStreamSocketIsValueError) {
  run_bounded(stream_socket_refused());
}

// ---- families and names ---------------------------------------------------------------------

bool ipv6_loopback_available() {
  try {
    weave::Socket probe(AF_INET6, SOCK_DGRAM);
    probe.bind(weave::SocketAddress::ip("::1", 0));
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

weave::Coro<void> echo_over_ipv6() {
  Endpoint server = co_await bound("::1", true);
  EXPECT_EQ(sockname(server).family(), AF_INET6);
  EXPECT_EQ(sockname(server).host(), "::1");
  Endpoint client = co_await connected_to("::1", sockname(server).port());
  client.transport->sendto("over v6");
  co_await until([&] { return !client.side->received.empty(); });
  EXPECT_EQ(client.side->payloads(), (std::vector<std::string>{"over v6"}));
  EXPECT_EQ(server.side->received.at(0).from.host(), "::1");
  EXPECT_EQ(client.transport->get_extra_info("peername").host(), "::1");
  co_await shut(client, *client.side);
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, EchoOverIpv6Loopback) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback";
  run_bounded(echo_over_ipv6());
}

weave::Coro<void> names_resolve() {
  Endpoint server = co_await bound("localhost", true, AF_INET);
  EXPECT_EQ(sockname(server).host(), "127.0.0.1");
  Endpoint client = co_await connected_to("localhost", sockname(server).port(), AF_INET);
  EXPECT_EQ(client.transport->get_extra_info("peername").host(), "127.0.0.1");
  client.transport->sendto("by name");
  co_await until([&] { return !client.side->received.empty(); });
  EXPECT_EQ(client.side->payloads(), (std::vector<std::string>{"by name"}));
  co_await shut(client, *client.side);
  co_await shut(server, *server.side);
}

TEST_F(Datagrams, LocalhostResolvesThroughGetaddrinfo) {
  run_bounded(names_resolve());
}

/// What create_datagram_endpoint raised with `opts`, as the exception itself.
weave::Coro<std::exception_ptr> failure_of(weave::DatagramEndpointOptions opts) {
  const weave::DatagramProtocolFactory factory = [] { return std::make_shared<Recorder>(); };
  try {
    weave::DatagramEndpoint e =
        co_await weave::get_running_loop().create_datagram_endpoint(factory, std::move(opts));
    e.transport->abort();
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

template <class E>
bool is(const std::exception_ptr& exc) {
  try {
    std::rethrow_exception(exc);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

weave::Coro<void> bad_addresses() {
  weave::DatagramEndpointOptions nothing;
  const std::exception_ptr no_address = co_await failure_of(nothing);
  EXPECT_TRUE(is<weave::ValueError>(no_address));

  weave::DatagramEndpointOptions unknown;
  unknown.remote_addr = weave::HostPort("no-such-host.invalid", 9);
  const std::exception_ptr dns = co_await failure_of(unknown);
  EXPECT_TRUE(is<std::system_error>(dns));
  try {
    std::rethrow_exception(dns);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().category(), weave::gai_category());  // EAI_NONAME, or EAI_AGAIN offline
  } catch (...) {
  }

  weave::DatagramEndpointOptions foreign;
  foreign.local_addr = weave::HostPort("192.0.2.1", 0);  // TEST-NET-1: no interface has it
  const std::exception_ptr not_here = co_await failure_of(foreign);
  EXPECT_EQ(error_code(not_here), EADDRNOTAVAIL);

  weave::DatagramEndpointOptions mismatched;
  mismatched.local_addr = weave::HostPort("127.0.0.1", 0);
  mismatched.remote_addr = weave::HostPort("::1", 9);
  const std::exception_ptr no_pair = co_await failure_of(mismatched);
  EXPECT_TRUE(is<weave::ValueError>(no_pair));

  weave::DatagramEndpointOptions wrong_family;
  wrong_family.local_addr = weave::HostPort("127.0.0.1", 0);
  wrong_family.family = AF_INET6;
  const std::exception_ptr family_error = co_await failure_of(wrong_family);
  EXPECT_TRUE(is<std::system_error>(family_error));

  Endpoint taken = co_await bound("127.0.0.1");
  weave::DatagramEndpointOptions in_use;
  in_use.local_addr = sockname(taken);
  const std::exception_ptr busy = co_await failure_of(in_use);
  EXPECT_EQ(error_code(busy), EADDRINUSE);
  co_await shut(taken, *taken.side);
}

TEST_F(Datagrams, BadAddressesRaiseWhatAsyncioRaises) {
  run_bounded(bad_addresses());
}

weave::Coro<void> reuse_port() {
  Endpoint first = co_await bound("127.0.0.1");
  weave::DatagramEndpointOptions opts;
  opts.local_addr = sockname(first);
  opts.reuse_port = true;
  const std::exception_ptr busy = co_await failure_of(opts);
  EXPECT_EQ(error_code(busy), EADDRINUSE);  // the first did not ask for it
  co_await shut(first, *first.side);
  Endpoint a = co_await endpoint(opts);
  Endpoint b = co_await endpoint(opts);
  EXPECT_EQ(sockname(a).port(), sockname(b).port());
  co_await shut(a, *a.side);
  co_await shut(b, *b.side);
}

TEST_F(Datagrams, ReusePortLetsTwoEndpointsShareAPort) {
  run_bounded(reuse_port());
}

}  // namespace

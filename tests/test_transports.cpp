// Transports and protocols (asyncio's callback layer) over TCP and Unix sockets, on both
// backends: the call order of a Protocol, echo through create_server/create_connection, flow
// control at the water marks, half-close, abort, peer resets, a client that never reads, a
// closed server refusing and resetting at once, accept under EMFILE, many connections on one
// loop; the fd count is unchanged by each test.

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "net/happy_eyeballs.hpp"
#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/steps.hpp"
#include "support/tls_certs.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::port_of;
using weave_test::run_bounded;

namespace {

using weave_test::open_fd_count;
using weave_test::Recorder;
using weave_test::until;

class Transports : public weave_test::FdLeakCheck {};

bool nodelay(const weave::Transport& t) {
  int on = 0;
  socklen_t len = sizeof on;
  EXPECT_EQ(getsockopt(std::any_cast<int>(t.get_extra_info("socket")), IPPROTO_TCP, TCP_NODELAY,
                       &on, &len),
            0);
  return on != 0;
}

// ---- the basic exchange
// --------------------------------------------------------------------------

weave::Coro<void> echo_over_tcp() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(true); }, "127.0.0.1", 0);
  EXPECT_TRUE(server.is_serving());
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  EXPECT_EQ(c.protocol.get(), client.get());
  co_await until([&] { return client->transport != nullptr; });
  c.transport->write("hello ");
  c.transport->writelines({"wor", "ld"});
  co_await until([&] { return client->received.size() >= 11; });
  EXPECT_EQ(client->received, "hello world");
  EXPECT_EQ(c.transport->get_extra_info("peername").port(), port_of(server));
  const std::uint16_t client_port = c.transport->get_extra_info("sockname").port();
  EXPECT_EQ(server_side->transport->get_extra_info("peername").port(), client_port);
  EXPECT_EQ(client->transport, c.transport.get());
  EXPECT_GE(std::any_cast<int>(c.transport->get_extra_info("socket")), 0);
  EXPECT_FALSE(c.transport->get_extra_info("no such thing").has_value());
  // Both ends turn Nagle off, as asyncio does: else a split reply waits for a delayed ACK.
  EXPECT_TRUE(nodelay(*c.transport));
  EXPECT_TRUE(nodelay(*server_side->transport));
  c.transport->close();
  EXPECT_TRUE(c.transport->is_closing());
  co_await client->wait_lost();
  co_await server_side->wait_lost();  // the server saw EOF and closed its side
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "lost"}));
  EXPECT_EQ(server_side->events, (std::vector<std::string>{"made", "eof", "lost"}));
  // Addresses asked for while connected still answer once the socket is closed.
  EXPECT_EQ(c.transport->get_extra_info("peername").port(), port_of(server));
  EXPECT_EQ(c.transport->get_extra_info("sockname").port(), client_port);
  server.close();
  EXPECT_FALSE(server.is_serving());
  EXPECT_TRUE(server.sockets().empty());
  co_await server.wait_closed();
}

TEST_F(Transports, EchoOverTcp) {
  run_bounded(echo_over_tcp());
}

bool keepalive(const weave::Transport& t) {
  int on = 0;
  socklen_t len = sizeof on;
  EXPECT_EQ(getsockopt(std::any_cast<int>(t.get_extra_info("socket")), SOL_SOCKET, SO_KEEPALIVE,
                       &on, &len),
            0);
  return on != 0;
}

// asyncio's sock= forms: a server on a socket the caller bound, a connection over one it
// connected, a transport over one accepted outside the loop; keep_alive on accepted sockets.
weave::Coro<void> transports_over_callers_sockets() {
  auto& loop = weave::get_running_loop();
  weave::Socket bound(AF_INET, SOCK_STREAM);
  bound.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  const std::uint16_t port = bound.getsockname().port();
  std::shared_ptr<Recorder> server_side;
  weave::ServerOptions opts{.keep_alive = true};
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(true); }, std::move(bound), opts);
  EXPECT_EQ(port_of(server), port);

  weave::Socket mine(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(mine, weave::SocketAddress::ip("127.0.0.1", port));
  auto client = std::make_shared<Recorder>();
  weave::Connection c = co_await loop.create_connection([&] { return client; }, std::move(mine));
  EXPECT_EQ(c.protocol.get(), client.get());
  c.transport->write("over my socket");
  co_await until([&] { return client->received.size() >= 14; });
  EXPECT_EQ(client->received, "over my socket");
  EXPECT_TRUE(keepalive(*server_side->transport));
  EXPECT_FALSE(keepalive(*c.transport));
  EXPECT_TRUE(nodelay(*c.transport));
  c.transport->close();
  co_await client->wait_lost();
  co_await server_side->wait_lost();
  server.close();
  co_await server.wait_closed();

  // connect_accepted_socket: the accept happened outside any server.
  weave::Socket listening(AF_INET, SOCK_STREAM);
  listening.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  listening.listen();
  auto accepting = weave::create_task(loop.sock_accept(listening));
  auto client2 = std::make_shared<Recorder>();
  weave::Connection c2 = co_await loop.create_connection([&] { return client2; }, "127.0.0.1",
                                                         listening.getsockname().port());
  auto accepted = co_await accepting;
  auto echo = std::make_shared<Recorder>(true);
  weave::Connection s2 =
      co_await loop.connect_accepted_socket([&] { return echo; }, std::move(accepted.first));
  EXPECT_EQ(s2.protocol.get(), echo.get());
  c2.transport->write("accepted");
  co_await until([&] { return client2->received.size() >= 8; });
  EXPECT_EQ(client2->received, "accepted");
  c2.transport->close();
  co_await client2->wait_lost();
  co_await echo->wait_lost();

  // Not a stream socket, or sock with local_addr: ValueError.
  weave::Socket udp(AF_INET, SOCK_DGRAM);
  bool raised = false;
  try {
    co_await loop.create_server([] { return std::make_shared<Recorder>(); }, std::move(udp));
  } catch (const weave::ValueError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  weave::Socket unconnected(AF_INET, SOCK_STREAM);
  weave::ConnectionOptions with_local{.local_addr = weave::SocketAddress::ip("127.0.0.1", 0)};
  raised = false;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); },
                                    std::move(unconnected), with_local);
  } catch (const weave::ValueError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
}

TEST_F(Transports, TransportsOverTheCallersSockets) {
  run_bounded(transports_over_callers_sockets());
}

weave::Coro<void> echo_over_unix_socket() {
  auto& loop = weave::get_running_loop();
  const std::string path = "/tmp/weave-test-" + std::to_string(getpid()) + ".sock";
  weave::Server server =
      co_await loop.create_unix_server([] { return std::make_shared<Recorder>(true); }, path);
  auto client = std::make_shared<Recorder>();
  weave::Connection c = co_await loop.create_unix_connection([&] { return client; }, path);
  c.transport->write("over unix");
  co_await until([&] { return client->received.size() >= 9; });
  EXPECT_EQ(client->received, "over unix");
  c.transport->close();
  co_await client->wait_lost();
  server.close();
  co_await server.wait_closed();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "close() removes the socket file";
}

TEST_F(Transports, EchoOverUnixSocket) {
  run_bounded(echo_over_unix_socket());
}

weave::Coro<void> connect_refused() {
  auto& loop = weave::get_running_loop();
  std::uint16_t port;
  {
    weave::Socket probe(AF_INET, SOCK_STREAM);
    probe.bind(weave::SocketAddress::ip("127.0.0.1", 0));
    port = probe.getsockname().port();
  }
  int err = 0;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1", port);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNREFUSED);
}

TEST_F(Transports, ConnectToAClosedPortIsRefused) {
  run_bounded(connect_refused());
}

weave::Coro<void> dns_failure() {
  auto& loop = weave::get_running_loop();
  bool failed = false;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); },
                                    "no-such-host.invalid", 80);
  } catch (const std::system_error& e) {
    failed = e.code().category() == weave::gai_category();  // EAI_NONAME, or EAI_AGAIN offline
  }
  EXPECT_TRUE(failed);
  auto localhost = co_await loop.getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM);
  EXPECT_FALSE(localhost.empty());
  for (const auto& info : localhost) {
    EXPECT_EQ(info.address.host(), "127.0.0.1");
    EXPECT_EQ(info.address.port(), 80);
  }
}

TEST_F(Transports, DnsFailureAndLocalhost) {
  run_bounded(dns_failure());
}

// ---- half-close, abort, resets ---------------------------------------------------------------

weave::Coro<void> half_close_keeps_writing() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(false, true); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  c.transport->write("question");
  c.transport->write_eof();
  EXPECT_THROW(c.transport->write("more"), weave::RuntimeError);
  co_await until([&] { return server_side && server_side->events.size() >= 2; });
  EXPECT_EQ(server_side->received, "question");
  EXPECT_EQ(server_side->events, (std::vector<std::string>{"made", "eof"}));
  // The server's side stays open after EOF (eof_received returned true): it still answers.
  server_side->transport->write("answer");
  server_side->transport->close();
  co_await client->wait_lost();
  EXPECT_EQ(client->received, "answer");
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "eof", "lost"}));
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, HalfCloseKeepsTheOtherDirectionOpen) {
  run_bounded(half_close_keeps_writing());
}

weave::Coro<void> abort_resets_the_peer() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  co_await until([&] { return server_side && server_side->transport != nullptr; });
  linger l{1, 0};  // abort with RST, as a crashed peer would
  setsockopt(std::any_cast<int>(c.transport->get_extra_info("socket")), SOL_SOCKET, SO_LINGER, &l,
             sizeof l);
  c.transport->abort();
  co_await client->wait_lost();
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "lost"}));
  co_await server_side->wait_lost();
  EXPECT_EQ(server_side->events, (std::vector<std::string>{"made", "lost with error"}));
  int err = 0;
  try {
    std::rethrow_exception(server_side->error);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNRESET);
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, AbortResetsThePeer) {
  run_bounded(abort_resets_the_peer());
}

// ---- flow control ------------------------------------------------------------------------------

/// Never reads: the writer's buffer must stay bounded by the protocol pausing.
weave::Coro<void> client_that_never_reads() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  co_await until([&] { return server_side && server_side->transport != nullptr; });
  server_side->transport->pause_reading();
  EXPECT_FALSE(server_side->transport->is_reading());
  c.transport->set_write_buffer_limits(64 * 1024);
  EXPECT_EQ(c.transport->get_write_buffer_limits(),
            (std::pair<std::size_t, std::size_t>{16384, 65536}));
  EXPECT_THROW(c.transport->set_write_buffer_limits(10, 20), weave::ValueError);
  const std::string chunk(16 * 1024, 'z');
  std::size_t written = 0;
  // Write like a well-behaved producer: only while not paused.
  for (int i = 0; i < 10000; ++i) {
    if (!client->events.empty() && client->events.back() == "pause") break;
    c.transport->write(chunk);
    written += chunk.size();
    co_await weave::sleep(0ms);
  }
  EXPECT_EQ(client->events.back(), "pause");
  EXPECT_GT(c.transport->get_write_buffer_size(), 64u * 1024);
  EXPECT_LT(c.transport->get_write_buffer_size(), 64u * 1024 + 2 * chunk.size());
  // The reader wakes up: the buffer drains and the protocol resumes.
  server_side->transport->resume_reading();
  co_await until([&] { return client->events.back() == "resume"; });
  co_await until([&] { return server_side->received.size() == written; });
  EXPECT_EQ(server_side->received.size(), written);
  EXPECT_EQ(c.transport->get_write_buffer_size(), 0u);
  c.transport->close();
  co_await client->wait_lost();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, ClientThatNeverReadsPausesTheWriter) {
  run_bounded(client_that_never_reads());
}

weave::Coro<void> close_flushes_the_buffer() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  const std::string big(4 << 20, 'b');
  c.transport->write(big);  // more than the socket takes at once
  c.transport->close();
  // While the close waits for the buffer, a write joins it and goes out last, as in asyncio.
  const std::size_t buffered = c.transport->get_write_buffer_size();
  EXPECT_GT(buffered, 0u);
  c.transport->write("tail");
  EXPECT_EQ(c.transport->get_write_buffer_size(), buffered + 4);
  co_await client->wait_lost();
  c.transport->write("dropped");  // lost: nothing is buffered any more
  EXPECT_EQ(c.transport->get_write_buffer_size(), 0u);
  co_await until([&] { return server_side && server_side->received.size() == big.size() + 4; });
  EXPECT_EQ(server_side->received.size(), big.size() + 4);
  EXPECT_EQ(server_side->received.substr(std::min(big.size(), server_side->received.size())),
            "tail");
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, CloseFlushesTheBufferFirst) {
  run_bounded(close_flushes_the_buffer());
}

/// Pauses after every chunk and resumes a moment later: whatever the backend had already
/// received when a pause took effect must come later, in order, with nothing lost.
class Stutter : public weave::Protocol {
 public:
  void connection_made(weave::Transport& t) override { transport_ = &t; }
  void data_received(std::string_view data) override {
    EXPECT_TRUE(transport_->is_reading()) << "data_received while paused";
    received.append(data);
    transport_->pause_reading();
    weave::get_running_loop().call_later(std::chrono::microseconds(200),
                                         [t = transport_] { t->resume_reading(); });
  }
  void connection_lost(std::exception_ptr) override { lost = true; }
  std::string received;
  bool lost = false;

 private:
  weave::Transport* transport_ = nullptr;
};

weave::Coro<void> pause_and_resume_lose_nothing() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Stutter> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Stutter>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  std::string sent;
  for (int i = 0; i < 2000; ++i) {
    std::string piece = std::to_string(i) + ",";
    sent += piece;
    c.transport->write(piece);
    if (i % 50 == 0) co_await weave::sleep(0ms);
  }
  c.transport->close();
  co_await until([&] { return server_side && server_side->received.size() == sent.size(); });
  EXPECT_EQ(server_side->received, sent);
  co_await client->wait_lost();
  co_await until([&] { return server_side->lost; });
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, PauseAndResumeLoseNothing) {
  run_bounded(pause_and_resume_lose_nothing());
}

// ---- servers ---------------------------------------------------------------------------------

weave::Coro<void> closing_server_with_live_clients() {
  auto& loop = weave::get_running_loop();
  std::vector<std::shared_ptr<Recorder>> accepted;
  weave::Server server = co_await loop.create_server(
      [&] { return accepted.emplace_back(std::make_shared<Recorder>()); }, "127.0.0.1", 0);
  const std::uint16_t port = port_of(server);
  std::vector<std::shared_ptr<Recorder>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_shared<Recorder>());
    co_await loop.create_connection([&] { return clients.back(); }, "127.0.0.1", port);
  }
  co_await until([&] { return accepted.size() == 3 && accepted.back()->transport != nullptr; });
  server.close();
  // New connections are refused; the accepted ones are still alive.
  EXPECT_THROW(co_await loop.create_connection([] { return std::make_shared<Recorder>(); },
                                               "127.0.0.1", port),
               std::system_error);
  auto waiting = weave::create_task(server.wait_closed());
  co_await weave::sleep(5ms);
  EXPECT_FALSE(waiting.done()) << "wait_closed must wait for the clients";
  server.close_clients();
  co_await waiting;
  for (auto& c : clients) co_await c->wait_lost();
}

TEST_F(Transports, ClosingAServerWithLiveClients) {
  run_bounded(closing_server_with_live_clients());
}

// ---- close() stops accepting at once (asyncio's Server.close) -----------------------------------

/// Waits until each raw client sees what the server did to it; returns the outcomes in order.
weave::Coro<std::vector<int>> outcomes_of(const std::vector<int>& fds) {
  std::vector<std::optional<int>> seen(fds.size());
  co_await until([&] {
    bool all = true;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!seen[i]) seen[i] = weave_test::read_outcome(fds[i]);
      all = all && seen[i].has_value();
    }
    return all;
  });
  std::vector<int> outcomes;
  for (const auto& s : seen) outcomes.push_back(s.value_or(EAGAIN));
  co_return outcomes;
}

/// When close() returns the listening socket is closed: a connect is refused at once, and the
/// factory is never called again.
weave::Coro<void> closed_server_refuses_at_once() {
  auto& loop = weave::get_running_loop();
  int made = 0;
  weave::Server server = co_await loop.create_server(
      [&] {
        ++made;
        return std::make_shared<Recorder>(true);
      },
      "127.0.0.1", 0);
  const std::uint16_t port = port_of(server);
  auto client = std::make_shared<Recorder>();
  weave::Connection c = co_await loop.create_connection([&] { return client; }, "127.0.0.1", port);
  c.transport->write("x");
  co_await until([&] { return client->received == "x"; });
  server.close();
  EXPECT_EQ(weave_test::connect_error(port), ECONNREFUSED) << "still listening after close()";
  int err = 0;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1", port);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNREFUSED);
  co_await weave_test::yield(5);
  EXPECT_EQ(made, 1);
  c.transport->close();
  co_await client->wait_lost();
  co_await server.wait_closed();  // the server's side saw EOF and closed
}

TEST_F(Transports, ClosedServerRefusesConnectionsAtOnce) {
  run_bounded(closed_server_refuses_at_once());
}

/// Connections the kernel completed before close() but the loop had not accepted yet are reset
/// when the listening socket closes, never handed to the factory, and leave no fd behind. With
/// `accepting`, one client was accepted first (the accept is in the kernel); without, the loop
/// never ran between start_serving() and close().
weave::Coro<void> queued_connections_are_reset(bool accepting) {
  auto& loop = weave::get_running_loop();
  const int baseline = open_fd_count();
  int made = 0;
  std::optional<weave::Server> server = co_await loop.create_server(
      [&] {
        ++made;
        return std::make_shared<Recorder>();
      },
      "127.0.0.1", 0, weave::ServerOptions{.start_serving = false});
  const std::uint16_t port = port_of(*server);
  server->start_serving();
  const int first = accepting ? weave_test::connect_blocking(port) : -1;
  if (accepting) co_await until([&] { return made == 1; });
  std::vector<int> queued;
  for (int i = 0; i < 8; ++i) queued.push_back(weave_test::connect_blocking(port));
  EXPECT_TRUE(std::all_of(queued.begin(), queued.end(), [](int fd) { return fd >= 0; }));
  server->close();  // the loop has not run since the connects
  EXPECT_EQ(weave_test::connect_error(port), ECONNREFUSED);
  EXPECT_EQ(co_await outcomes_of(queued), std::vector<int>(queued.size(), ECONNRESET));
  if (accepting) ::close(first);  // the accepted client ends, which lets wait_closed return
  co_await server->wait_closed();
  server.reset();  // late completions must find nothing of the server
  for (int fd : queued) ::close(fd);
  co_await weave_test::yield(5);
  co_await weave::sleep(1ms);  // a poll of the backend, which reaps any late completion
  EXPECT_EQ(made, accepting ? 1 : 0);
  EXPECT_EQ(open_fd_count(), baseline) << "a connection accepted late was not closed";
}

TEST_F(Transports, CloseResetsQueuedConnectionsOfAnAcceptingServer) {
  run_bounded(queued_connections_are_reset(true));
}

TEST_F(Transports, CloseResetsQueuedConnectionsBeforeTheLoopRan) {
  run_bounded(queued_connections_are_reset(false));
}

/// A server closed before the loop ran leaves nothing armed on its fd number, which the next
/// socket is given: the next server on that number gets its connections.
weave::Coro<void> next_server_on_the_same_fd() {
  auto& loop = weave::get_running_loop();
  int made_first = 0;
  int made_next = 0;
  weave::Server first = co_await loop.create_server(
      [&] {
        ++made_first;
        return std::make_shared<Recorder>();
      },
      "127.0.0.1", 0, weave::ServerOptions{.start_serving = false});
  const int fd = first.sockets().at(0).fd();
  first.start_serving();
  first.close();
  weave::Server next = co_await loop.create_server(
      [&] {
        ++made_next;
        return std::make_shared<Recorder>();
      },
      "127.0.0.1", 0, weave::ServerOptions{.start_serving = false});
  EXPECT_EQ(next.sockets().at(0).fd(), fd) << "the test needs the fd number reused";
  next.start_serving();
  const int client = weave_test::connect_blocking(port_of(next));
  std::optional<int> outcome;
  co_await until([&] {
    outcome = weave_test::read_outcome(client);
    return made_next > 0 || outcome.has_value();
  });
  EXPECT_EQ(made_next, 1);
  EXPECT_FALSE(outcome.has_value()) << "outcome " << outcome.value_or(0);
  EXPECT_EQ(made_first, 0);
  ::close(client);
  next.close();
  co_await next.wait_closed();
}

TEST_F(Transports, CloseBeforeTheLoopRanSparesTheNextServerOnTheSameFd) {
  run_bounded(next_server_on_the_same_fd());
}

/// A batch of connections arrives in one loop iteration and the first one's factory call closes
/// the server: the others (already accepted by the kernel on io_uring, still queued on epoll)
/// never reach the factory and their fds are closed.
weave::Coro<void> close_from_the_factory_mid_batch() {
  auto& loop = weave::get_running_loop();
  const int baseline = open_fd_count();
  int made = 0;
  weave::Server* serving = nullptr;
  weave::Server server = co_await loop.create_server(
      [&] {
        if (++made == 2) serving->close();
        return std::make_shared<Recorder>();
      },
      "127.0.0.1", 0);
  serving = &server;
  const std::uint16_t port = port_of(server);
  const int first = weave_test::connect_blocking(port);
  co_await until([&] { return made == 1; });  // the accept is in the kernel
  std::vector<int> batch;
  for (int i = 0; i < 8; ++i) batch.push_back(weave_test::connect_blocking(port));
  co_await until([&] { return made > 1; });
  EXPECT_EQ(weave_test::connect_error(port), ECONNREFUSED);
  // The batch's first client was accepted and stays open; each of the others sees its end.
  const std::vector<int> others(batch.begin() + 1, batch.end());
  for (int outcome : co_await outcomes_of(others)) {
    EXPECT_TRUE(outcome == 0 || outcome == ECONNRESET) << "outcome " << outcome;
  }
  EXPECT_FALSE(weave_test::read_outcome(first).has_value());
  EXPECT_FALSE(weave_test::read_outcome(batch.front()).has_value());
  ::close(first);
  for (int fd : batch) ::close(fd);
  co_await server.wait_closed();
  co_await weave::sleep(1ms);  // a poll of the backend, which reaps any late completion
  EXPECT_EQ(made, 2);
  EXPECT_EQ(open_fd_count(), baseline);
}

TEST_F(Transports, CloseFromTheFactoryDropsTheRestOfTheBatch) {
  run_bounded(close_from_the_factory_mid_batch());
}

weave::Coro<void> serve_forever_until_cancelled() {
  auto& loop = weave::get_running_loop();
  weave::Server server =
      co_await loop.create_server([] { return std::make_shared<Recorder>(true); }, "127.0.0.1", 0,
                                  weave::ServerOptions{.start_serving = false});
  EXPECT_FALSE(server.is_serving());
  auto serving = weave::create_task(server.serve_forever());
  co_await weave::sleep(0ms);
  EXPECT_TRUE(server.is_serving());
  EXPECT_THROW(co_await server.serve_forever(), weave::RuntimeError);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  c.transport->write("x");
  co_await until([&] { return client->received == "x"; });
  c.transport->close();
  co_await client->wait_lost();
  serving.cancel();
  EXPECT_THROW(co_await serving, weave::CancelledError);
  EXPECT_FALSE(server.is_serving());
}

weave::Coro<void> start_serving_later() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server =
      co_await loop.create_server([&] { return server_side = std::make_shared<Recorder>(); },
                                  "127.0.0.1", 0, weave::ServerOptions{.start_serving = false});
  EXPECT_FALSE(server.is_serving());
  co_await server.start_serving();  // a coroutine in asyncio: awaiting it must compile and work
  EXPECT_TRUE(server.is_serving());
  server.start_serving();  // idempotent
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  c.transport->write("x");
  co_await until([&] { return server_side && server_side->received == "x"; });
  c.transport->close();
  co_await client->wait_lost();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, StartServingLaterIsAwaitable) {
  run_bounded(start_serving_later());
}

TEST_F(Transports, ServeForeverUntilCancelled) {
  run_bounded(serve_forever_until_cancelled());
}

/// With the fd limit reached, accept fails with EMFILE: the server reports it, backs off, and
/// accepts the waiting client once fds are free again, without spinning.
weave::Coro<void> accept_under_emfile() {
  auto& loop = weave::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](weave::EventLoop&, const weave::ExceptionContext& ctx) {
    reports.push_back(ctx.message);
  });
  std::vector<std::shared_ptr<Recorder>> accepted;
  weave::Server server = co_await loop.create_server(
      [&] { return accepted.emplace_back(std::make_shared<Recorder>(true)); }, "127.0.0.1", 0);
  weave::Socket client(AF_INET, SOCK_STREAM);  // made first: connect needs no new fd
  // Fill the fd table up to a lowered limit, so that the server's accept(2) gets EMFILE.
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(open_fd_count() + 8);
  setrlimit(RLIMIT_NOFILE, &low);
  std::vector<int> hog;
  for (int fd; (fd = dup(0)) >= 0;) hog.push_back(fd);
  co_await loop.sock_connect(client.fd(), server.sockets().at(0).getsockname());
  const auto t0 = weave::Clock::now();
  co_await weave::sleep(250ms);
  EXPECT_TRUE(accepted.empty());
  EXPECT_FALSE(reports.empty());
  EXPECT_LT(reports.size(), 10u) << "the server must back off, not spin";
  for (int fd : hog) ::close(fd);
  setrlimit(RLIMIT_NOFILE, &old);
  co_await loop.sock_sendall(client.fd(), "after");
  std::string echoed;
  while (echoed.size() < 5) echoed += co_await loop.sock_recv(client.fd(), 16);
  EXPECT_EQ(echoed, "after");
  EXPECT_EQ(accepted.size(), 1u);
  EXPECT_LT(weave::Clock::now() - t0, 5s);
  client.close();
  co_await accepted.at(0)->wait_lost();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, AcceptUnderEmfileBacksOffAndRecovers) {
  run_bounded(accept_under_emfile());
}

/// The clients run in a child process (each end of a connection is an fd, and one process
/// may not hold 20,000): it connects `count` sockets, then writes on each, then reads each echo,
/// holding every connection open until all are verified. Only raw syscalls run in the child.
[[noreturn]] void run_clients(std::uint16_t port, int count) {
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) _exit(2);
    fds.push_back(fd);
  }
  for (int i = 0; i < count; ++i) {
    const std::string msg = "ping " + std::to_string(i) + "\n";
    if (::write(fds[i], msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) _exit(3);
  }
  for (int i = 0; i < count; ++i) {
    const std::string msg = "ping " + std::to_string(i) + "\n";
    std::string got;
    char buf[64];
    while (got.size() < msg.size()) {
      const ssize_t n = ::read(fds[i], buf, sizeof buf);
      if (n <= 0) _exit(4);
      got.append(buf, static_cast<std::size_t>(n));
    }
    if (got != msg) _exit(5);
  }
  _exit(0);
}

/// Counts the connections that are open at the same time.
class Counted : public weave::Protocol {
 public:
  Counted(int* open, int* peak) : open_(open), peak_(peak) {}
  void connection_made(weave::Transport& t) override {
    transport_ = &t;
    *peak_ = std::max(*peak_, ++*open_);
  }
  void data_received(std::string_view data) override { transport_->write(data); }
  void connection_lost(std::exception_ptr) override { --*open_; }

 private:
  weave::Transport* transport_ = nullptr;
  int* open_;
  int* peak_;
};

weave::Coro<void> many_connections_on_one_loop(int count) {
  auto& loop = weave::get_running_loop();
  int open = 0;
  int peak = 0;
  weave::Server server =
      co_await loop.create_server([&] { return std::make_shared<Counted>(&open, &peak); },
                                  "127.0.0.1", 0, weave::ServerOptions{.backlog = 4096});
  const pid_t child = ::fork();
  if (child == 0) run_clients(port_of(server), count);
  int status = -1;
  while (::waitpid(child, &status, WNOHANG) == 0) co_await weave::sleep(5ms);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client status " << status;
  EXPECT_EQ(peak, count);
  co_await until([&] { return open == 0; });  // every connection saw the child's exit
  EXPECT_EQ(open, 0);
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, TenThousandConnectionsOnOneLoop) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  const rlimit before = lim;
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 10200);
  setrlimit(RLIMIT_NOFILE, &lim);
  ASSERT_GE(lim.rlim_cur, 10200u) << "the hard fd limit is too low for 10,000 connections";
  run_bounded(many_connections_on_one_loop(10000), std::chrono::seconds(120));
  setrlimit(RLIMIT_NOFILE, &before);
}

// ---- Happy Eyeballs (RFC 8305), interleave, all_errors ------------------------------------------

/// An address whose connects never complete: a listener with a backlog of 0 whose one queued
/// connection fills its accept queue, so the kernel drops every further SYN.
struct Unanswering {
  Unanswering() : listener(AF_INET, SOCK_STREAM) {
    listener.bind(weave::SocketAddress::ip("127.0.0.1", 0));
    listener.listen(0);
    filler = weave_test::connect_blocking(listener.getsockname().port());
    EXPECT_GE(filler, 0);
  }
  ~Unanswering() { ::close(filler); }
  weave::SocketAddress address() const { return listener.getsockname(); }
  weave::Socket listener;
  int filler = -1;
};

/// A port nothing listens on (ECONNREFUSED at once).
weave::SocketAddress refusing() {
  weave::Socket s(AF_INET, SOCK_STREAM);
  s.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  return s.getsockname();  // closed on return: the port refuses
}

double seconds_since(weave::Clock::time_point t0) {
  return std::chrono::duration<double>(weave::Clock::now() - t0).count();
}

int error_code(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& x) {
    return x.code().value();
  } catch (...) {
    return -1;
  }
}

weave::Coro<void> happy_eyeballs_slow_first_address() {
  auto& loop = weave::get_running_loop();
  Unanswering slow;
  weave::Socket good(AF_INET, SOCK_STREAM);
  good.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  good.listen();
  const int baseline = open_fd_count();
  // The first address never answers: the second starts after the delay and wins; the first
  // attempt is cancelled and its socket closed.
  const auto t0 = weave::Clock::now();
  std::vector<weave::SocketAddress> addresses{slow.address(), good.getsockname()};
  weave::detail::ConnectPlan plan{std::nullopt, 300ms, false};
  weave::Socket sock =
      co_await weave::detail::connect_any(loop, std::move(addresses), std::move(plan));
  const double took = seconds_since(t0);
  EXPECT_GE(took, 0.3) << "the second attempt started before the delay";
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(sock.getpeername().port(), good.getsockname().port());
  EXPECT_EQ(open_fd_count(), baseline + 1) << "the loser's socket was not closed";
}

TEST_F(Transports, HappyEyeballsStartsTheNextAddressAfterTheDelay) {
  run_bounded(happy_eyeballs_slow_first_address());
}

weave::Coro<void> happy_eyeballs_fast_failure() {
  auto& loop = weave::get_running_loop();
  weave::Socket good(AF_INET, SOCK_STREAM);
  good.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  good.listen();
  const int baseline = open_fd_count();
  // A refused first attempt starts the second at once, long before the delay.
  const auto t0 = weave::Clock::now();
  std::vector<weave::SocketAddress> addresses{refusing(), refusing(), good.getsockname()};
  weave::detail::ConnectPlan plan{std::nullopt, 5s, false};
  weave::Socket sock =
      co_await weave::detail::connect_any(loop, std::move(addresses), std::move(plan));
  EXPECT_LT(seconds_since(t0), 2.0) << "a failed attempt did not start the next at once";
  EXPECT_EQ(sock.getpeername().port(), good.getsockname().port());
  EXPECT_EQ(open_fd_count(), baseline + 1);
}

TEST_F(Transports, HappyEyeballsStartsTheNextAddressAtOnceAfterAFailure) {
  run_bounded(happy_eyeballs_fast_failure());
}

weave::Coro<void> happy_eyeballs_all_errors() {
  auto& loop = weave::get_running_loop();
  const weave::SocketAddress a = refusing();
  const weave::SocketAddress b = refusing();
  // all_errors: every attempt's error, in the order tried, raced or not.
  for (bool race : {true, false}) {
    std::vector<weave::SocketAddress> addresses{a, b};
    weave::detail::ConnectPlan plan{std::nullopt, std::nullopt, true};
    if (race) plan.delay = 1s;
    std::vector<std::exception_ptr> errors;
    try {
      co_await weave::detail::connect_any(loop, std::move(addresses), std::move(plan));
    } catch (const weave::ExceptionGroup& g) {
      EXPECT_EQ(g.message(), "create_connection failed");
      errors = g.exceptions();
    }
    EXPECT_EQ(errors.size(), 2U);
    for (const std::exception_ptr& e : errors) EXPECT_EQ(error_code(e), ECONNREFUSED);
  }
  // Without it: errors that all read the same raise the first as it is.
  std::vector<weave::SocketAddress> addresses{a, b};
  weave::detail::ConnectPlan plan{std::nullopt, 1s, false};
  int code = 0;
  try {
    co_await weave::detail::connect_any(loop, std::move(addresses), std::move(plan));
  } catch (const std::system_error& e) {
    code = e.code().value();
  }
  EXPECT_EQ(code, ECONNREFUSED);

  // Through create_connection, with the options.
  weave::ConnectionOptions opts;
  opts.happy_eyeballs_delay = 100ms;
  opts.all_errors = true;
  std::size_t n = 0;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1",
                                    a.port(), opts);
  } catch (const weave::ExceptionGroup& g) {
    n = g.exceptions().size();
    EXPECT_EQ(error_code(g.exceptions().at(0)), ECONNREFUSED);
  }
  EXPECT_EQ(n, 1U);
  opts.happy_eyeballs_delay = -1ms;
  bool refused = false;
  try {
    co_await loop.create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1",
                                    a.port(), opts);
  } catch (const weave::ValueError&) {
    refused = true;
  }
  EXPECT_TRUE(refused) << "a negative happy_eyeballs_delay is a ValueError";
}

TEST_F(Transports, HappyEyeballsAllErrorsHoldsEveryError) {
  run_bounded(happy_eyeballs_all_errors());
}

weave::Coro<void> happy_eyeballs_cancelled() {
  auto& loop = weave::get_running_loop();
  Unanswering slow1;
  Unanswering slow2;
  const int baseline = open_fd_count();
  std::vector<weave::SocketAddress> addresses{slow1.address(), slow2.address()};
  weave::detail::ConnectPlan plan{std::nullopt, 50ms, false};
  auto racing =
      weave::create_task(weave::detail::connect_any(loop, std::move(addresses), std::move(plan)));
  co_await weave::sleep(200ms);  // both attempts are under way
  EXPECT_EQ(open_fd_count(), baseline + 2);
  EXPECT_FALSE(racing.done());
  racing.cancel();
  bool cancelled = false;
  try {
    co_await racing;
  } catch (const weave::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(open_fd_count(), baseline) << "a cancelled attempt kept its socket";
}

TEST_F(Transports, HappyEyeballsCancelledClosesEveryAttempt) {
  run_bounded(happy_eyeballs_cancelled());
}

weave::Coro<void> happy_eyeballs_through_create_connection() {
  auto& loop = weave::get_running_loop();
  weave::Server server =
      co_await loop.create_server([] { return std::make_shared<Recorder>(true); }, "127.0.0.1", 0);
  weave::ConnectionOptions opts;
  opts.happy_eyeballs_delay = 250ms;
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server), opts);
  c.transport->write("raced");
  co_await until([&] { return client->received.size() >= 5; });
  EXPECT_EQ(client->received, "raced");
  EXPECT_TRUE(nodelay(*c.transport));
  c.transport->close();
  co_await client->wait_lost();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, HappyEyeballsThroughCreateConnection) {
  run_bounded(happy_eyeballs_through_create_connection());
}

TEST(Interleave, ReordersByFamilyAsAsyncio) {
  using weave::SocketAddress;
  const SocketAddress a1 = SocketAddress::ip("127.0.0.1", 1);
  const SocketAddress a2 = SocketAddress::ip("127.0.0.2", 1);
  const SocketAddress a3 = SocketAddress::ip("127.0.0.3", 1);
  const SocketAddress b1 = SocketAddress::ip("::1", 1);
  const SocketAddress b2 = SocketAddress::ip("::2", 1);
  auto names = [](const std::vector<SocketAddress>& v) {
    std::vector<std::string> out;
    for (const SocketAddress& a : v) out.push_back(a.to_string());
    return out;
  };
  const std::vector<SocketAddress> in{a1, a2, a3, b1, b2};
  EXPECT_EQ(names(weave::detail::interleave_addresses(in, 1)), names({a1, b1, a2, b2, a3}));
  EXPECT_EQ(names(weave::detail::interleave_addresses(in, 2)), names({a1, a2, b1, a3, b2}));
  EXPECT_EQ(names(weave::detail::interleave_addresses(in, 9)), names({a1, a2, a3, b1, b2}));
  const std::vector<SocketAddress> v6_first{b1, a1, a2};
  EXPECT_EQ(names(weave::detail::interleave_addresses(v6_first, 1)), names({b1, a1, a2}));
}

// ---- create_server on several hosts ------------------------------------------------------------

weave::Coro<void> server_on_several_hosts() {
  auto& loop = weave::get_running_loop();
  std::vector<std::string> hosts{"127.0.0.1", "::1", "127.0.0.1"};
  weave::Server server = co_await loop.create_server(
      [] { return std::make_shared<Recorder>(true); }, std::move(hosts), 0);
  // One socket per address; the address given twice is listened on once.
  EXPECT_EQ(server.sockets().size(), 2U);
  if (server.sockets().size() != 2) co_return;
  EXPECT_EQ(server.sockets()[0].getsockname().host(), "127.0.0.1");
  EXPECT_EQ(server.sockets()[1].getsockname().host(), "::1");
  for (const weave::Socket& listening : server.sockets()) {
    const weave::SocketAddress at = listening.getsockname();
    auto client = std::make_shared<Recorder>();
    weave::Connection c =
        co_await loop.create_connection([&] { return client; }, at.host(), at.port());
    c.transport->write(at.host());
    co_await until([&] { return client->received.size() >= at.host().size(); });
    EXPECT_EQ(client->received, at.host());
    c.transport->close();
    co_await client->wait_lost();
  }
  server.close();
  EXPECT_TRUE(server.sockets().empty());
  co_await server.wait_closed();

  // A host that cannot be bound fails the whole call, and closes the sockets made before it.
  weave::Socket taken(AF_INET, SOCK_STREAM);
  taken.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  taken.listen();
  std::vector<std::string> clash{"::1", "127.0.0.1"};
  int code = 0;
  try {
    weave::ServerOptions no_reuse{.reuse_address = false};
    co_await loop.create_server([] { return std::make_shared<Recorder>(); }, std::move(clash),
                                taken.getsockname().port(), no_reuse);
  } catch (const std::system_error& e) {
    code = e.code().value();
  }
  EXPECT_EQ(code, EADDRINUSE);
  std::vector<std::string> none;
  bool refused = false;
  try {
    co_await loop.create_server([] { return std::make_shared<Recorder>(); }, std::move(none), 0);
  } catch (const weave::ValueError&) {
    refused = true;
  }
  EXPECT_TRUE(refused) << "no host at all is a ValueError";
}

TEST_F(Transports, ServerOnSeveralHosts) {
  if (!weave_test::have_ipv6_loopback()) GTEST_SKIP() << "this machine has no IPv6 loopback (::1)";
  run_bounded(server_on_several_hosts());
}

// ---- loop.sendfile -----------------------------------------------------------------------------

/// A temporary file of `size` bytes of a pattern that shows misplaced bytes, unlinked at once.
struct TempFile {
  int fd = -1;
  std::string content;
  explicit TempFile(std::size_t size) {
    char name[] = "/tmp/weave-sendfile-XXXXXX";
    fd = mkstemp(name);
    if (fd < 0) throw weave::os_error(errno, "mkstemp");
    unlink(name);
    content.resize(size);
    for (std::size_t i = 0; i < size; ++i) {
      content[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    }
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = write(fd, content.data() + done, size - done);
      if (n <= 0) throw weave::os_error(errno, "write");
      done += static_cast<std::size_t>(n);
    }
    lseek(fd, 0, SEEK_SET);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { close(fd); }
};

constexpr std::size_t kSendfileSize = std::size_t{16} * 1024 * 1024;

/// Sends a 16 MiB file over `c` to `server_side` (paused, so that the send has to wait), with
/// bytes written before it; checks the bytes, the file position, and the transport's state
/// during and after.
weave::Coro<void> send_the_file(weave::Connection& c, std::shared_ptr<Recorder>& server_side,
                                bool zero_copy) {
  auto& loop = weave::get_running_loop();
  TempFile file(kSendfileSize);
  co_await until([&] { return server_side && server_side->transport; });
  server_side->transport->pause_reading();
  const std::string head(100000, 'H');
  c.transport->write(head);
  auto sending = weave::create_task(loop.sendfile(*c.transport, file.fd));
  co_await weave_test::yield(3);
  EXPECT_FALSE(sending.done()) << "16 MiB went out with a reader that does not read";
  // The zero-copy path owns the socket meanwhile: write() is refused, reading paused.
  if (zero_copy) {
    EXPECT_THROW(c.transport->write("x"), weave::RuntimeError);
    EXPECT_FALSE(c.transport->is_reading());
  }
  server_side->transport->resume_reading();
  const std::size_t sent = co_await sending;
  EXPECT_EQ(sent, kSendfileSize);
  co_await until([&] { return server_side->received.size() >= head.size() + kSendfileSize; });
  EXPECT_EQ(server_side->received.size(), head.size() + kSendfileSize);
  EXPECT_TRUE(server_side->received == head + file.content) << "the bytes differ";
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), static_cast<off_t>(kSendfileSize));
  EXPECT_TRUE(c.transport->is_reading()) << "reading was not resumed";
  // A range; and writes go on afterwards.
  server_side->received.clear();
  std::optional<std::size_t> count = 5000;
  const std::size_t range = co_await loop.sendfile(*c.transport, file.fd, 1000, count);
  EXPECT_EQ(range, 5000U);
  c.transport->write("tail");
  co_await until([&] { return server_side->received.size() >= 5004; });
  EXPECT_EQ(server_side->received, file.content.substr(1000, 5000) + "tail");
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), 6000);
}

weave::Coro<void> sendfile_over_tcp() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  co_await send_the_file(c, server_side, true);

  // A pipe cannot go through sendfile(2): refused without fallback, read and written with it.
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_EQ(write(p[1], "from a pipe", 11), 11);
  close(p[1]);
  bool unavailable = false;
  try {
    co_await loop.sendfile(*c.transport, p[0], 0, std::nullopt, false);
  } catch (const weave::SendfileNotAvailableError&) {
    unavailable = true;
  }
  EXPECT_TRUE(unavailable);
  server_side->received.clear();
  const std::size_t piped = co_await loop.sendfile(*c.transport, p[0]);
  EXPECT_EQ(piped, 11U);
  close(p[0]);
  co_await until([&] { return server_side->received.size() >= 11; });
  EXPECT_EQ(server_side->received, "from a pipe");
  EXPECT_TRUE(c.transport->is_reading());

  c.transport->close();
  bool closing = false;
  try {
    co_await loop.sendfile(*c.transport, 0);
  } catch (const weave::RuntimeError&) {
    closing = true;
  }
  EXPECT_TRUE(closing) << "sendfile on a closing transport is a RuntimeError";
  co_await client->wait_lost();
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "lost"}));
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, SendfileOverTcpIsZeroCopy) {
  run_bounded(sendfile_over_tcp(), std::chrono::seconds(60));
}

weave::Coro<void> sendfile_aborted() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  co_await until([&] { return server_side && server_side->transport; });
  server_side->transport->pause_reading();
  TempFile file(kSendfileSize);
  auto sending = weave::create_task(loop.sendfile(*c.transport, file.fd));
  co_await weave_test::yield(3);
  EXPECT_FALSE(sending.done());
  c.transport->abort();  // the send is withdrawn before the socket closes
  int code = 0;
  try {
    co_await sending;
  } catch (const std::system_error& e) {
    code = e.code().value();
  }
  EXPECT_EQ(code, EPIPE);
  co_await client->wait_lost();
  server.close();
  server.close_clients();
  co_await server.wait_closed();
}

weave::Coro<void> sendfile_then_close() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  co_await until([&] { return server_side && server_side->transport; });
  server_side->transport->pause_reading();
  TempFile file(kSendfileSize);
  auto sending = weave::create_task(loop.sendfile(*c.transport, file.fd));
  co_await weave_test::yield(3);
  EXPECT_FALSE(sending.done());
  // close() during the send waits for its end, as it waits for a buffer: nothing is cut.
  c.transport->close();
  EXPECT_TRUE(c.transport->is_closing());
  co_await weave_test::yield(3);
  EXPECT_EQ(client->events, (std::vector<std::string>{"made"}));
  server_side->transport->resume_reading();
  const std::size_t sent = co_await sending;
  EXPECT_EQ(sent, kSendfileSize);
  co_await client->wait_lost();
  co_await server_side->wait_lost();
  EXPECT_TRUE(server_side->received == file.content) << server_side->received.size() << " bytes";
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "lost"}));
  server.close();
  co_await server.wait_closed();
}

TEST_F(Transports, SendfileThenCloseSendsEverything) {
  run_bounded(sendfile_then_close(), std::chrono::seconds(60));
}

TEST_F(Transports, SendfileEndsWithTheConnection) {
  run_bounded(sendfile_aborted(), std::chrono::seconds(60));
}

std::unique_ptr<weave_test::TestCertificates> sendfile_certs;

weave::Coro<void> sendfile_over_tls() {
  auto& loop = weave::get_running_loop();
  weave::ServerOptions server_opts;
  server_opts.ssl =
      weave::SSLContext::server(sendfile_certs->cert_file(), sendfile_certs->key_file());
  std::shared_ptr<Recorder> server_side;
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(); }, "127.0.0.1", 0, server_opts);
  weave::ConnectionOptions opts;
  opts.ssl = weave::SSLContext::client();
  opts.ssl->load_verify_locations(sendfile_certs->ca_file());
  opts.server_hostname = "localhost";
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server), opts);
  // TLS cannot be zero-copy: refused without fallback, read and written with it.
  TempFile small(10);
  bool unavailable = false;
  try {
    co_await loop.sendfile(*c.transport, small.fd, 0, std::nullopt, false);
  } catch (const weave::SendfileNotAvailableError&) {
    unavailable = true;
  }
  EXPECT_TRUE(unavailable);
  co_await send_the_file(c, server_side, false);
  EXPECT_EQ(&c.transport->get_protocol(), client.get()) << "the protocol was not restored";
  c.transport->close();
  co_await client->wait_lost();
  // (the server's close_notify answering ours may come first as "eof")
  EXPECT_EQ(client->events.front(), "made after handshake");
  EXPECT_EQ(client->events.back(), "lost");
  server.close();
  server.close_clients();
  co_await server.wait_closed();
}

TEST_F(Transports, SendfileOverTlsFallsBack) {
  sendfile_certs = std::make_unique<weave_test::TestCertificates>();
  run_bounded(sendfile_over_tls(), std::chrono::seconds(60));
  sendfile_certs.reset();
}

// ---- connect_read_pipe / connect_write_pipe ----------------------------------------------------

weave::Coro<void> read_pipe_transport() {
  auto& loop = weave::get_running_loop();
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto proto = std::make_shared<Recorder>(false, true);  // even "keep open" ends at EOF
  weave::Connection c = co_await loop.connect_read_pipe([&] { return proto; }, p[0]);
  EXPECT_EQ(c.protocol.get(), proto.get());
  EXPECT_EQ(proto->events, (std::vector<std::string>{"made"})) << "returned before made";
  EXPECT_EQ(std::any_cast<int>(c.transport->get_extra_info("pipe")), p[0]);
  EXPECT_EQ(write(p[1], "abc", 3), 3);
  co_await until([&] { return proto->received.size() >= 3; });
  EXPECT_EQ(proto->received, "abc");
  c.transport->pause_reading();
  EXPECT_FALSE(c.transport->is_reading());
  EXPECT_EQ(write(p[1], "def", 3), 3);
  co_await weave_test::yield(5);
  EXPECT_EQ(proto->received, "abc") << "data arrived while paused";
  c.transport->resume_reading();
  co_await until([&] { return proto->received.size() >= 6; });
  EXPECT_EQ(proto->received, "abcdef");
  EXPECT_THROW(c.transport->write("x"), weave::RuntimeError);
  close(p[1]);  // EOF: eof_received, then connection_lost
  co_await proto->wait_lost();
  EXPECT_EQ(proto->events, (std::vector<std::string>{"made", "eof", "lost"}));
  EXPECT_TRUE(c.transport->is_closing());

  // Only pipes, FIFOs, sockets and character devices; the fd stays the caller's on error.
  TempFile regular(1);
  bool refused = false;
  try {
    co_await loop.connect_read_pipe([] { return std::make_shared<Recorder>(); }, regular.fd);
  } catch (const weave::ValueError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  EXPECT_GE(fcntl(regular.fd, F_GETFD), 0) << "the refused fd was closed";
}

TEST_F(Transports, ReadPipeTransport) {
  run_bounded(read_pipe_transport());
}

weave::Coro<void> write_pipe_transport() {
  auto& loop = weave::get_running_loop();
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  auto proto = std::make_shared<Recorder>();
  weave::Connection c = co_await loop.connect_write_pipe([&] { return proto; }, p[1]);
  EXPECT_FALSE(c.transport->get_extra_info("peername").has_value());
  // A slow reader: 1 MiB over a pipe that holds far less is buffered past the high-water mark
  // (pause_writing), and drains to the low one (resume_writing) as the reader takes 4 KiB at a
  // time.
  c.transport->set_write_buffer_limits(64 * 1024);
  std::string data(1024 * 1024, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (i / 1000) % 26);
  c.transport->write(data);
  EXPECT_EQ(proto->events, (std::vector<std::string>{"made", "pause"}));
  EXPECT_GT(c.transport->get_write_buffer_size(), 64U * 1024);
  std::string got;
  loop.add_reader(p[0], [&] {
    char buf[4096];
    const ssize_t n = read(p[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
  });
  co_await until([&] { return got.size() >= data.size(); });
  loop.remove_reader(p[0]);
  EXPECT_TRUE(got == data) << "the bytes differ (" << got.size() << " read)";
  EXPECT_EQ(proto->events, (std::vector<std::string>{"made", "pause", "resume"}));
  EXPECT_EQ(c.transport->get_write_buffer_size(), 0U);
  // write_eof closes the write end once flushed: the reader sees EOF.
  c.transport->write("end");
  c.transport->write_eof();
  co_await proto->wait_lost();
  // (io_uring lets the file go once its poll is withdrawn, an iteration later.)
  std::string tail;
  ssize_t n = -1;
  co_await until([&] {
    char buf[8];
    n = read(p[0], buf, sizeof buf);
    if (n > 0) tail.append(buf, static_cast<std::size_t>(n));
    return n == 0;
  });
  EXPECT_EQ(tail, "end");
  EXPECT_EQ(n, 0);
  close(p[0]);
  EXPECT_EQ(proto->events, (std::vector<std::string>{"made", "pause", "resume", "lost"}));

  // The reader went away: the next write loses the connection with EPIPE (not SIGPIPE).
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto broken = std::make_shared<Recorder>();
  weave::Connection b = co_await loop.connect_write_pipe([&] { return broken; }, p[1]);
  close(p[0]);
  b.transport->write("nobody reads");
  co_await broken->wait_lost();
  EXPECT_EQ(broken->events, (std::vector<std::string>{"made", "lost with error"}));
  EXPECT_EQ(error_code(broken->error), EPIPE);

  // A reader that goes away is noticed without a write: the transport closes by itself.
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto left = std::make_shared<Recorder>();
  weave::Connection l = co_await loop.connect_write_pipe([&] { return left; }, p[1]);
  close(p[0]);
  co_await left->wait_lost();
  EXPECT_EQ(left->events, (std::vector<std::string>{"made", "lost"}));
  EXPECT_TRUE(l.transport->is_closing());
}

TEST_F(Transports, WritePipeTransport) {
  run_bounded(write_pipe_transport());
}

}  // namespace

// The low-level socket API (asyncio's loop.sock_* and add_reader/add_writer) on both backends:
// data in order and intact, errors as std::system_error with the errno, cancellation that
// withdraws the wait (no byte consumed, nothing left armed), and the fd count unchanged by each
// test.

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

/// Every test must leave the process with the fds it found.
class Sockets : public weave_test::FdLeakCheck {};

weave::Socket listener() {
  weave::Socket s(AF_INET, SOCK_STREAM);
  s.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  s.listen();
  return s;
}

struct Pair {
  weave::Socket a;
  weave::Socket b;
};

Pair socket_pair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
    throw weave::os_error(errno, "socketpair");
  }
  return {weave::Socket::adopt(fds[0]), weave::Socket::adopt(fds[1])};
}

// ---- addresses ----------------------------------------------------------------------------------

TEST_F(Sockets, AddressesParseAndPrint) {
  auto v4 = weave::SocketAddress::ip("127.0.0.1", 8080);
  EXPECT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(v4.host(), "127.0.0.1");
  EXPECT_EQ(v4.port(), 8080);
  EXPECT_EQ(v4.to_string(), "127.0.0.1:8080");
  auto v6 = weave::SocketAddress::ip("::1", 443);
  EXPECT_EQ(v6.family(), AF_INET6);
  EXPECT_EQ(v6.to_string(), "[::1]:443");
  auto un = weave::SocketAddress::unix_path("/tmp/weave.sock");
  EXPECT_EQ(un.family(), AF_UNIX);
  EXPECT_EQ(un.host(), "/tmp/weave.sock");
  EXPECT_EQ(un.port(), 0);
  EXPECT_THROW(weave::SocketAddress::ip("localhost", 1), weave::ValueError);
  EXPECT_THROW(weave::SocketAddress::unix_path(std::string(200, 'x')), weave::ValueError);
}

TEST_F(Sockets, BindToPortZeroPicksAPort) {
  weave::Socket s = listener();
  EXPECT_NE(s.getsockname().port(), 0);
  EXPECT_EQ(s.getsockname().host(), "127.0.0.1");
}

// ---- accept, connect, send, receive
// --------------------------------------------------------------

weave::Coro<void> accept_connect_echo() {
  auto& loop = weave::get_running_loop();
  weave::Socket server = listener();
  const weave::SocketAddress where = server.getsockname();
  auto accepting = weave::create_task(loop.sock_accept(server.fd()));
  weave::Socket client(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(client.fd(), where);
  auto [conn, peer] = co_await accepting;
  EXPECT_EQ(peer.port(), client.getsockname().port());
  EXPECT_EQ(conn.getpeername().port(), client.getsockname().port());

  co_await loop.sock_sendall(client.fd(), "ping");
  std::string got;
  while (got.size() < 4) got += co_await loop.sock_recv(conn.fd(), 16);
  EXPECT_EQ(got, "ping");
  co_await loop.sock_sendall(conn.fd(), "pong");
  char buf[16];
  std::size_t n = co_await loop.sock_recv_into(client.fd(), std::span<char>(buf, sizeof buf));
  EXPECT_EQ(std::string(buf, n), "pong");
}

TEST_F(Sockets, AcceptConnectSendReceive) {
  run_bounded(accept_connect_echo());
}

// asyncio passes the socket object itself; the same calls take a weave::Socket.
weave::Coro<void> the_same_with_socket_objects() {
  auto& loop = weave::get_running_loop();
  weave::Socket server = listener();
  auto accepting = weave::create_task(loop.sock_accept(server));
  weave::Socket client(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(client, server.getsockname());
  auto [conn, peer] = co_await accepting;
  EXPECT_EQ(peer.port(), client.getsockname().port());
  co_await loop.sock_sendall(client, "ping");
  std::string got;
  while (got.size() < 4) got += co_await loop.sock_recv(conn, 16);
  EXPECT_EQ(got, "ping");
  co_await loop.sock_sendall(conn, "pong");
  char buf[16];
  std::size_t n = co_await loop.sock_recv_into(client, std::span<char>(buf, sizeof buf));
  EXPECT_EQ(std::string(buf, n), "pong");
}

TEST_F(Sockets, TheSameCallsTakeSocketObjects) {
  run_bounded(the_same_with_socket_objects());
}

weave::Coro<void> send_later(weave::EventLoop& loop, int fd, std::vector<std::string>* log) {
  co_await weave::sleep(5ms);
  log->push_back("send");
  co_await loop.sock_sendall(fd, "late");
}

weave::Coro<void> recv_waits_for_data() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  std::vector<std::string> log;
  auto sender = weave::create_task(send_later(loop, p.b.fd(), &log));
  std::string got = co_await loop.sock_recv(p.a.fd(), 16);
  log.push_back("received " + got);
  co_await sender;
  EXPECT_EQ(log, (std::vector<std::string>{"send", "received late"}));
}

TEST_F(Sockets, RecvWaitsForData) {
  run_bounded(recv_waits_for_data());
}

weave::Coro<void> recv_at_end_of_stream_is_empty() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  co_await loop.sock_sendall(p.b.fd(), "last");
  shutdown(p.b.fd(), SHUT_WR);
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "last");
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "");
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "");
}

TEST_F(Sockets, RecvAtEndOfStreamIsEmpty) {
  run_bounded(recv_at_end_of_stream_is_empty());
}

weave::Coro<std::size_t> drain_slowly(weave::EventLoop& loop, int fd, std::uint64_t* sum) {
  std::size_t total = 0;
  char buf[4096];
  for (;;) {
    std::size_t n = co_await loop.sock_recv_into(fd, std::span<char>(buf, sizeof buf));
    if (n == 0) co_return total;
    for (std::size_t i = 0; i < n; ++i) *sum = *sum * 31 + static_cast<unsigned char>(buf[i]);
    total += n;
    if (total % (1 << 20) < sizeof buf) co_await weave::sleep(1ms);  // a slow reader
  }
}

// The kernel takes a large send in pieces: sendall waits for room and resumes where it stopped.
weave::Coro<void> sendall_survives_partial_writes() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  std::string data(8 << 20, '\0');
  std::uint64_t expected = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>((i * 7919) >> 3);
    expected = expected * 31 + static_cast<unsigned char>(data[i]);
  }
  std::uint64_t sum = 0;
  auto reader = weave::create_task(drain_slowly(loop, p.b.fd(), &sum));
  co_await loop.sock_sendall(p.a.fd(), data);
  shutdown(p.a.fd(), SHUT_WR);
  EXPECT_EQ(co_await reader, data.size());
  EXPECT_EQ(sum, expected);
}

TEST_F(Sockets, SendallSurvivesPartialWrites) {
  run_bounded(sendall_survives_partial_writes(), std::chrono::seconds(30));
}

// ---- errors -------------------------------------------------------------------------------------

weave::Coro<void> connect_to_closed_port_is_refused() {
  auto& loop = weave::get_running_loop();
  weave::SocketAddress closed;
  {
    weave::Socket probe = listener();  // a port that was free a moment ago, now closed
    closed = probe.getsockname();
  }
  weave::Socket client(AF_INET, SOCK_STREAM);
  int err = 0;
  try {
    co_await loop.sock_connect(client.fd(), closed);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNREFUSED);
}

TEST_F(Sockets, ConnectToAClosedPortIsRefused) {
  run_bounded(connect_to_closed_port_is_refused());
}

/// A connected TCP pair; `reset()` closes b with RST instead of FIN.
struct TcpPair {
  weave::Socket a;
  weave::Socket b;
  void reset() {
    linger l{1, 0};
    setsockopt(b.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    b.close();
  }
};

weave::Coro<TcpPair> tcp_pair() {
  auto& loop = weave::get_running_loop();
  weave::Socket server = listener();
  weave::Socket client(AF_INET, SOCK_STREAM);
  auto accepting = weave::create_task(loop.sock_accept(server.fd()));
  co_await loop.sock_connect(client.fd(), server.getsockname());
  auto accepted = co_await accepting;
  co_return TcpPair{std::move(client), std::move(accepted.first)};
}

weave::Coro<void> reset_later(TcpPair* p) {
  co_await weave::sleep(5ms);
  p->reset();
}

weave::Coro<void> peer_reset_mid_read() {
  auto& loop = weave::get_running_loop();
  TcpPair p = co_await tcp_pair();
  auto resetter = weave::create_task(reset_later(&p));
  int err = 0;
  try {
    co_await loop.sock_recv(p.a.fd(), 16);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNRESET);
  co_await resetter;
}

TEST_F(Sockets, PeerResetMidRead) {
  run_bounded(peer_reset_mid_read());
}

weave::Coro<void> peer_reset_mid_write() {
  auto& loop = weave::get_running_loop();
  TcpPair p = co_await tcp_pair();
  auto resetter = weave::create_task(reset_later(&p));
  std::string big(64 << 20, 'x');  // more than the socket buffers: sendall must wait
  int err = 0;
  try {
    co_await loop.sock_sendall(p.a.fd(), big);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_TRUE(err == ECONNRESET || err == EPIPE) << "errno " << err;
  co_await resetter;
}

TEST_F(Sockets, PeerResetMidWrite) {
  run_bounded(peer_reset_mid_write());
}

weave::Coro<void> two_readers_on_one_fd_is_an_error() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  auto first = weave::create_task(loop.sock_recv(p.a.fd(), 4));
  co_await weave::sleep(0s);
  EXPECT_THROW(co_await loop.sock_recv(p.a.fd(), 4), weave::RuntimeError);
  EXPECT_THROW(loop.add_reader(p.a.fd(), [] {}), weave::RuntimeError);
  co_await loop.sock_sendall(p.b.fd(), "data");
  EXPECT_EQ(co_await first, "data");
}

TEST_F(Sockets, TwoReadersOnOneFdIsAnError) {
  run_bounded(two_readers_on_one_fd_is_an_error());
}

// ---- cancellation -------------------------------------------------------------------------------

weave::Coro<void> cancelled_recv_consumes_nothing() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  auto waiting = weave::create_task(loop.sock_recv(p.a.fd(), 16));
  co_await weave::sleep(1ms);
  waiting.cancel("enough");
  try {
    co_await waiting;
    ADD_FAILURE() << "not cancelled";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "enough");
  }
  // The watch is gone: data sent now wakes nobody and is all there for the next reader.
  co_await loop.sock_sendall(p.b.fd(), "kept");
  co_await weave::sleep(1ms);
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "kept");
}

TEST_F(Sockets, CancelledRecvConsumesNothing) {
  run_bounded(cancelled_recv_consumes_nothing());
}

weave::Coro<void> cancelled_accept_then_close() {
  auto& loop = weave::get_running_loop();
  auto server = std::make_unique<weave::Socket>(listener());
  auto accepting = weave::create_task(loop.sock_accept(server->fd()));
  co_await weave::sleep(1ms);
  accepting.cancel();
  EXPECT_THROW(co_await accepting, weave::CancelledError);
  // Closing right after: nothing of the withdrawn wait may keep the socket alive or fire later.
  server.reset();
  co_await weave::sleep(2ms);
}

TEST_F(Sockets, CancelledAcceptThenClose) {
  run_bounded(cancelled_accept_then_close());
}

weave::Coro<void> cancel_before_the_wait_starts() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  auto waiting = weave::create_task(loop.sock_recv(p.a.fd(), 16));
  waiting.cancel();  // before its first step: it never watches the fd
  EXPECT_THROW(co_await waiting, weave::CancelledError);
  co_await loop.sock_sendall(p.b.fd(), "x");
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "x");
}

TEST_F(Sockets, CancelBeforeTheWaitStarts) {
  run_bounded(cancel_before_the_wait_starts());
}

weave::Coro<void> timeout_around_recv() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  EXPECT_THROW(co_await weave::wait_for(loop.sock_recv(p.a.fd(), 16), 5ms), weave::TimeoutError);
  co_await loop.sock_sendall(p.b.fd(), "after");
  EXPECT_EQ(co_await loop.sock_recv(p.a.fd(), 16), "after");
}

TEST_F(Sockets, TimeoutAroundRecv) {
  run_bounded(timeout_around_recv());
}

// ---- add_reader / add_writer --------------------------------------------------------------------

weave::Coro<void> reader_is_level_triggered() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  int calls = 0;
  std::string got;
  // Reads one byte per call: the callback must be called again while bytes remain.
  loop.add_reader(p.a.fd(), [&] {
    ++calls;
    char c;
    if (::recv(p.a.fd(), &c, 1, 0) == 1) got.push_back(c);
  });
  co_await loop.sock_sendall(p.b.fd(), "abc");
  for (int i = 0; i < 200 && got.size() < 3; ++i) co_await weave::sleep(0s);
  EXPECT_EQ(got, "abc");
  EXPECT_EQ(calls, 3);
  // Nothing left to read: no more calls.
  for (int i = 0; i < 5; ++i) co_await weave::sleep(0s);
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(loop.remove_reader(p.a.fd()));
  EXPECT_FALSE(loop.remove_reader(p.a.fd()));
  co_await loop.sock_sendall(p.b.fd(), "d");
  co_await weave::sleep(1ms);
  EXPECT_EQ(calls, 3);
}

TEST_F(Sockets, ReaderIsLevelTriggered) {
  run_bounded(reader_is_level_triggered());
}

// The plain callback was queued first, so it runs in the same batch as the reader it removes,
// just before it: the reader must not run.
weave::Coro<void> reader_removed_while_queued_does_not_run() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  int calls = 0;
  bool removed = false;
  co_await loop.sock_sendall(p.b.fd(), "x");
  loop.add_reader(p.a.fd(), [&] { ++calls; });
  loop.call_soon([&] { removed = loop.remove_reader(p.a.fd()); });
  co_await weave::sleep(2ms);
  EXPECT_TRUE(removed);
  EXPECT_EQ(calls, 0);
}

TEST_F(Sockets, ReaderRemovedWhileQueuedDoesNotRun) {
  run_bounded(reader_removed_while_queued_does_not_run());
}

weave::Coro<void> writer_runs_when_writable() {
  auto& loop = weave::get_running_loop();
  Pair p = socket_pair();
  int calls = 0;
  loop.add_writer(p.a.fd(), [&] {
    ++calls;
    loop.remove_writer(p.a.fd());
  });
  co_await weave::sleep(1ms);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(loop.remove_writer(p.a.fd()));
}

TEST_F(Sockets, WriterRunsWhenWritable) {
  run_bounded(writer_runs_when_writable());
}

TEST_F(Sockets, CallbacksAreDroppedWhenTheLoopCloses) {
  Pair p = socket_pair();
  int calls = 0;
  {
    weave::EventLoop loop;
    loop.add_reader(p.a.fd(), [&] { ++calls; });
    loop.add_writer(p.a.fd(), [&] { ++calls; });
    loop.close();
    EXPECT_THROW(loop.add_reader(p.a.fd(), [] {}), weave::RuntimeError);
  }
  EXPECT_EQ(calls, 0);
}

// ---- datagrams: sock_recvfrom, sock_recvfrom_into, sock_sendto ---------------------------------

weave::Socket udp_socket() {
  weave::Socket s(AF_INET, SOCK_DGRAM);
  s.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  return s;
}

weave::Coro<void> datagrams_carry_their_sender() {
  auto& loop = weave::get_running_loop();
  weave::Socket a = udp_socket();
  weave::Socket b = udp_socket();
  // The receive waits first: the datagram arrives while it is suspended.
  auto receiving = weave::create_task(loop.sock_recvfrom(b.fd(), 64));
  co_await weave::sleep(1ms);
  EXPECT_FALSE(receiving.done());
  std::size_t n = co_await loop.sock_sendto(a.fd(), "first", b.getsockname());
  EXPECT_EQ(n, 5U);
  auto [data, from] = co_await receiving;
  EXPECT_EQ(data, "first");
  EXPECT_EQ(from.port(), a.getsockname().port());
  EXPECT_EQ(from.host(), "127.0.0.1");

  // recvfrom_into: a datagram longer than the buffer is truncated to it.
  n = co_await loop.sock_sendto(b.fd(), "second datagram", a.getsockname());
  EXPECT_EQ(n, 15U);
  char buf[6];
  auto [got, sender] = co_await loop.sock_recvfrom_into(a.fd(), std::span<char>(buf, sizeof buf));
  EXPECT_EQ(std::string(buf, got), "second");
  EXPECT_EQ(sender.port(), b.getsockname().port());
}

TEST_F(Sockets, DatagramsCarryTheirSender) {
  run_bounded(datagrams_carry_their_sender());
}

weave::Coro<void> sendto_errors_carry_the_errno() {
  auto& loop = weave::get_running_loop();
  weave::Socket a = udp_socket();
  const std::string huge(70000, 'x');  // over the 65507-byte UDP limit
  bool raised = false;
  try {
    co_await loop.sock_sendto(a.fd(), huge, a.getsockname());
  } catch (const std::system_error& e) {
    raised = true;
    EXPECT_EQ(e.code().value(), EMSGSIZE);
  }
  EXPECT_TRUE(raised);
}

TEST_F(Sockets, SendtoErrorsCarryTheErrno) {
  run_bounded(sendto_errors_carry_the_errno());
}

// ---- getnameinfo -------------------------------------------------------------------------------

weave::Coro<void> getnameinfo_names_an_address() {
  auto& loop = weave::get_running_loop();
  const weave::SocketAddress where = weave::SocketAddress::ip("127.0.0.1", 80);
  auto [host, service] = co_await loop.getnameinfo(where, NI_NUMERICHOST | NI_NUMERICSERV);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(service, "80");
  const weave::SocketAddress v6 = weave::SocketAddress::ip("::1", 443);
  auto [host6, service6] = co_await loop.getnameinfo(v6, NI_NUMERICHOST | NI_NUMERICSERV);
  EXPECT_EQ(host6, "::1");
  EXPECT_EQ(service6, "443");
  // NI_NAMEREQD with an address no name resolves to: a gai_category() error.
  const weave::SocketAddress nowhere = weave::SocketAddress::ip("192.0.2.1", 1);
  bool raised = false;
  try {
    co_await loop.getnameinfo(nowhere, NI_NAMEREQD | NI_NUMERICSERV);
  } catch (const std::system_error& e) {
    raised = true;
    EXPECT_EQ(&e.code().category(), &weave::gai_category());
  }
  EXPECT_TRUE(raised);
}

TEST_F(Sockets, GetnameinfoNamesAnAddress) {
  run_bounded(getnameinfo_names_an_address());
}

// ---- sock_sendfile -----------------------------------------------------------------------------

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
    for (std::size_t i = 0; i < size; ++i)
      content[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = write(fd, content.data() + done, size - done);
      if (n <= 0) throw weave::os_error(errno, "write");
      done += static_cast<std::size_t>(n);
    }
    lseek(fd, 0, SEEK_SET);
  }
  ~TempFile() { close(fd); }
};

struct Connected {
  weave::Socket sender;
  weave::Socket receiver;
};

weave::Coro<Connected> sendfile_pair() {
  auto& loop = weave::get_running_loop();
  weave::Socket server = listener();
  auto accepting = weave::create_task(loop.sock_accept(server.fd()));
  weave::Socket client(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(client.fd(), server.getsockname());
  auto accepted = co_await accepting;
  co_return Connected{std::move(client), std::move(accepted.first)};
}

weave::Coro<std::string> drain(int fd, std::size_t expected) {
  auto& loop = weave::get_running_loop();
  std::string got;
  while (got.size() < expected) {
    std::string part = co_await loop.sock_recv(fd, 1 << 16);
    if (part.empty()) break;
    got += part;
  }
  co_return got;
}

weave::Coro<void> sendfile_sends_the_range() {
  auto& loop = weave::get_running_loop();
  TempFile file(3 * 1024 * 1024 + 123);  // over a socket buffer: the send must wait for the reader
  Connected c = co_await sendfile_pair();
  auto reading = weave::create_task(drain(c.receiver.fd(), file.content.size()));
  std::size_t sent = co_await loop.sock_sendfile(c.sender.fd(), file.fd);
  EXPECT_EQ(sent, file.content.size());
  std::string got = co_await reading;
  EXPECT_TRUE(got == file.content) << "the bytes differ (" << got.size() << " received)";
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), static_cast<off_t>(file.content.size()));

  // An offset and a count: exactly that range, and the position after it.
  reading = weave::create_task(drain(c.receiver.fd(), 1000));
  std::optional<std::size_t> count = 1000;
  sent = co_await loop.sock_sendfile(c.sender.fd(), file.fd, 5000, count);
  EXPECT_EQ(sent, 1000U);
  got = co_await reading;
  EXPECT_EQ(got, file.content.substr(5000, 1000));
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), 6000);

  // A count past the end stops at the end; an offset past it sends nothing.
  reading = weave::create_task(drain(c.receiver.fd(), 23));
  count = 1 << 20;
  sent = co_await loop.sock_sendfile(c.sender.fd(), file.fd, file.content.size() - 23, count);
  EXPECT_EQ(sent, 23U);
  EXPECT_EQ(co_await reading, file.content.substr(file.content.size() - 23));
  sent = co_await loop.sock_sendfile(c.sender.fd(), file.fd, file.content.size() + 10);
  EXPECT_EQ(sent, 0U);
}

TEST_F(Sockets, SendfileSendsTheRange) {
  run_bounded(sendfile_sends_the_range());
}

weave::Coro<void> feed_pipe(int fd, std::string data) {
  std::string_view left = data;
  while (!left.empty()) {
    const ssize_t n = write(fd, left.data(), left.size());
    if (n > 0) {
      left.remove_prefix(static_cast<std::size_t>(n));
    } else {
      co_await weave::sleep(1ms);  // the pipe is full until the sendfile side reads it
    }
  }
  close(fd);
}

weave::Coro<void> sendfile_falls_back_for_a_pipe() {
  auto& loop = weave::get_running_loop();
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) throw weave::os_error(errno, "pipe2");
  std::string data(300 * 1024, 'p');
  for (std::size_t i = 0; i < data.size(); i += 97) data[i] = 'q';
  Connected c = co_await sendfile_pair();
  // sendfile(2) needs a file it can map pages of; with no fallback a pipe is refused.
  bool refused = false;
  try {
    co_await loop.sock_sendfile(c.sender.fd(), p[0], 0, std::nullopt, false);
  } catch (const weave::SendfileNotAvailableError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  // With the fallback: the pipe is read until its end of file and all of it sent.
  auto reading = weave::create_task(drain(c.receiver.fd(), data.size()));
  int writer = p[1];
  auto feeding = weave::create_task(feed_pipe(writer, data));
  std::size_t sent = co_await loop.sock_sendfile(c.sender.fd(), p[0]);
  co_await feeding;
  EXPECT_EQ(sent, data.size());
  EXPECT_TRUE(co_await reading == data);
  close(p[0]);
}

TEST_F(Sockets, SendfileFallsBackForAPipe) {
  run_bounded(sendfile_falls_back_for_a_pipe());
}

weave::Coro<void> read_a_little_then_close(weave::Socket s) {
  auto& loop = weave::get_running_loop();
  std::string got = co_await loop.sock_recv(s.fd(), 1 << 16);
  EXPECT_FALSE(got.empty());
  s.close();
}

weave::Coro<void> sendfile_to_a_peer_that_closes() {
  auto& loop = weave::get_running_loop();
  TempFile file(16 * 1024 * 1024);
  Connected c = co_await sendfile_pair();
  auto closing = weave::create_task(read_a_little_then_close(std::move(c.receiver)));
  bool raised = false;
  try {
    co_await loop.sock_sendfile(c.sender.fd(), file.fd);
  } catch (const std::system_error& e) {
    raised = true;
    EXPECT_TRUE(e.code().value() == EPIPE || e.code().value() == ECONNRESET) << e.what();
  }
  EXPECT_TRUE(raised);
  co_await closing;
}

TEST_F(Sockets, SendfileToAPeerThatClosesRaises) {
  run_bounded(sendfile_to_a_peer_that_closes());
}

}  // namespace

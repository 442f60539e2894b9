// asyncio.streams behaviour on both backends: the read family on a hand-fed reader (CPython's
// results and errors for the same input), then real connections: echo, half-close, drain against
// a client that never reads, peer resets, a failing client callback, cancellation that loses no
// data, the connection closing when its last handle goes, and a closed server that stops
// accepting at once. The fd count is unchanged by each.

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "net/pipes.hpp"
#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/steps.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::echo_lines;
using weave_test::port_of;
using weave_test::run_bounded;

namespace {

class Streams : public weave_test::FdLeakCheck {};

// ---- the read family on a hand-fed reader ------------------------------------------------------

weave::Coro<void> read_family() {
  weave::StreamReader r;
  r.feed_data("line one\nline two\nabcdef");
  EXPECT_EQ(co_await r.readline(), "line one\n");
  EXPECT_EQ(co_await r.readuntil("two"), "line two");
  EXPECT_EQ(co_await r.read(1), "\n");
  EXPECT_EQ(co_await r.readexactly(3), "abc");
  EXPECT_EQ(co_await r.read(0), "");
  r.feed_data("ghi");
  r.feed_eof();
  EXPECT_FALSE(r.at_eof());
  EXPECT_EQ(co_await r.read(), "defghi");
  EXPECT_TRUE(r.at_eof());
  EXPECT_EQ(co_await r.read(), "");
  EXPECT_EQ(co_await r.readline(), "");
}

TEST_F(Streams, ReadFamilyOnAHandFedReader) {
  run_bounded(read_family());
}

// The separator outlives the caller's string: the task starts after the statement that made it.
weave::Coro<void> readuntil_keeps_its_separator() {
  weave::StreamReader r;
  auto reading = weave::create_task(r.readuntil(std::string(2, '\r') + "\n"));
  co_await weave::sleep(0ms);
  r.feed_data("a\rb\r\r\nrest");
  EXPECT_EQ(co_await reading, "a\rb\r\r\n");
}

TEST_F(Streams, ReaduntilKeepsItsSeparator) {
  run_bounded(readuntil_keeps_its_separator());
}

weave::Coro<void> incomplete_reads() {
  weave::StreamReader r;
  r.feed_data("partial");
  r.feed_eof();
  try {
    co_await r.readexactly(10);
    ADD_FAILURE() << "no IncompleteReadError";
  } catch (const weave::IncompleteReadError& e) {
    EXPECT_EQ(e.partial, "partial");
    EXPECT_EQ(e.expected, 10u);
  }
  weave::StreamReader r2;
  r2.feed_data("no separator");
  r2.feed_eof();
  try {
    co_await r2.readuntil(";");
    ADD_FAILURE() << "no IncompleteReadError";
  } catch (const weave::IncompleteReadError& e) {
    EXPECT_EQ(e.partial, "no separator");
  }
  weave::StreamReader r3;
  r3.feed_data("last line without newline");
  r3.feed_eof();
  EXPECT_EQ(co_await r3.readline(), "last line without newline");
  EXPECT_THROW(co_await r3.readuntil(""), weave::ValueError);
}

TEST_F(Streams, IncompleteReadsCarryThePartialData) {
  run_bounded(incomplete_reads());
}

weave::Coro<void> limits() {
  weave::StreamReader r(8);
  r.feed_data("0123456789abcdef;rest");
  try {
    co_await r.readuntil(";");
    ADD_FAILURE() << "no LimitOverrunError";
  } catch (const weave::LimitOverrunError& e) {
    EXPECT_EQ(e.consumed, 16u);  // "Separator is found, but chunk is longer than limit"
  }
  EXPECT_EQ(co_await r.readexactly(4), "0123");  // readuntil left the data buffered

  weave::StreamReader lines(8);
  lines.feed_data("way too long a line\nshort\n");
  EXPECT_THROW(co_await lines.readline(), weave::ValueError);
  EXPECT_EQ(co_await lines.readline(), "short\n");  // the long line was dropped, with its "\n"
}

TEST_F(Streams, LimitsRaiseAsAsyncioDoes) {
  run_bounded(limits());
}

weave::Coro<void> feed_later(weave::StreamReader r) {
  co_await weave::sleep(2ms);
  r.feed_data("hel");
  co_await weave::sleep(2ms);
  r.feed_data("lo\n");
}

weave::Coro<void> two_waiters() {
  weave::StreamReader r;
  auto first = weave::create_task(r.readline());
  co_await weave::sleep(0ms);
  EXPECT_THROW(co_await r.read(1), weave::RuntimeError);
  auto feeder = weave::create_task(feed_later(r));
  EXPECT_EQ(co_await first, "hello\n");
  co_await feeder;
}

TEST_F(Streams, OneWaiterAtATime) {
  run_bounded(two_waiters());
}

weave::Coro<void> cancelled_read_loses_nothing() {
  weave::StreamReader r;
  r.feed_data("abc");  // no newline yet
  auto waiting = weave::create_task(r.readline());
  co_await weave::sleep(1ms);
  waiting.cancel();
  EXPECT_THROW(co_await waiting, weave::CancelledError);
  r.feed_data("def\n");
  EXPECT_EQ(co_await r.readline(), "abcdef\n");
}

TEST_F(Streams, CancelledReadLosesNoData) {
  run_bounded(cancelled_read_loses_nothing());
}

// ---- connections
// ---------------------------------------------------------------------------------

weave::Coro<void> echo_over_streams() {
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  EXPECT_EQ(writer.get_extra_info("peername").port(), port_of(server));
  for (int i = 0; i < 100; ++i) {
    writer.write("line " + std::to_string(i) + "\n");
    co_await writer.drain();
    EXPECT_EQ(co_await reader.readline(), "line " + std::to_string(i) + "\n");
  }
  writer.writelines({"a\n", "b\n"});
  EXPECT_EQ(co_await reader.readexactly(4), "a\nb\n");
  writer.write_eof();  // the server reads EOF and closes: we read EOF too
  EXPECT_EQ(co_await reader.read(), "");
  EXPECT_TRUE(reader.at_eof());
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, EchoOverTcp) {
  run_bounded(echo_over_streams());
}

weave::Coro<void> echo_chunks(weave::StreamReader reader, weave::StreamWriter writer) {
  char buffer[64 * 1024];
  for (;;) {
    const std::size_t n = co_await reader.read_into(std::span<char>(buffer, sizeof buffer));
    if (n == 0) break;
    writer.write(std::string_view(buffer, n));
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

weave::Coro<void> send_all(weave::StreamWriter writer, const std::string& data) {
  // Uneven slices, so that the receiver's chunks never line up with the sender's.
  for (std::size_t at = 0, step = 1; at < data.size(); at += step, step = step * 7 % 65521 + 1) {
    writer.write(std::string_view(data).substr(at, step));
    co_await writer.drain();
  }
  writer.write_eof();
}

// Megabytes in both directions at once, each byte checked: the receive paths hand bytes over in
// runs of many buffers, and the order of the bytes within and across runs must hold.
weave::Coro<void> bulk_echo_arrives_intact() {
  weave::Server server = co_await weave::start_server(echo_chunks, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  std::string data(24 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  auto sending = weave::create_task(send_all(writer, data));
  const std::string echoed = co_await reader.read();
  co_await sending;
  EXPECT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data);  // not EXPECT_EQ: a mismatch would print 48 MiB
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, BulkEchoArrivesIntact) {
  run_bounded(bulk_echo_arrives_intact());
}

weave::Coro<void> echo_over_unix_streams() {
  const std::string path = "/tmp/weave-streams-" + std::to_string(getpid()) + ".sock";
  weave::Server server = co_await weave::start_unix_server(echo_lines, path);
  auto [reader, writer] = co_await weave::open_unix_connection(path);
  writer.write("unix\n");
  EXPECT_EQ(co_await reader.readline(), "unix\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "close() removes the socket file";
}

TEST_F(Streams, EchoOverUnixSockets) {
  run_bounded(echo_over_unix_streams());
}

weave::Coro<void> answer_after_eof(weave::StreamReader reader, weave::StreamWriter writer) {
  std::string all = co_await reader.read();  // until the client's write_eof
  writer.write("got " + std::to_string(all.size()) + " bytes");
  co_await writer.drain();
  writer.close();
}

weave::Coro<void> half_close() {
  weave::Server server = co_await weave::start_server(answer_after_eof, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  writer.write(std::string(100000, 'q'));
  writer.write_eof();
  EXPECT_EQ(co_await reader.read(), "got 100000 bytes");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, HalfCloseThenAnswer) {
  run_bounded(half_close());
}

// The server never reads: drain() must block with a bounded buffer, then go on once it reads.
struct Gate {
  weave::Event open;
  std::size_t received = 0;
};

weave::Coro<void> slow_reader(weave::StreamReader reader, weave::StreamWriter writer, Gate* gate) {
  co_await gate->open.wait();
  for (;;) {
    std::string block = co_await reader.read(1 << 16);
    if (block.empty()) break;
    gate->received += block.size();
  }
  writer.close();
}

/// A server whose handler reads only once the gate opens.
weave::Coro<weave::Server> gated_server(Gate& gate) {
  co_return co_await weave::start_server(
      [&gate](weave::StreamReader r, weave::StreamWriter w) {
        return slow_reader(std::move(r), std::move(w), &gate);
      },
      "127.0.0.1", 0);
}

weave::Coro<void> drain_against_a_client_that_never_reads() {
  Gate gate;
  weave::Server server = co_await gated_server(gate);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  const std::string chunk(64 * 1024, 'd');
  std::size_t sent = 0;
  std::size_t max_buffered = 0;
  auto t0 = weave::Clock::now();
  bool blocked = false;
  while (weave::Clock::now() - t0 < 200ms) {
    writer.write(chunk);
    sent += chunk.size();
    max_buffered = std::max(max_buffered, writer.transport().get_write_buffer_size());
    auto before = weave::Clock::now();
    auto draining = weave::create_task(writer.drain());
    co_await weave::sleep(1ms);
    if (!draining.done()) {
      blocked = true;
      gate.open.set();  // now the server reads: drain must finish
      co_await draining;
      break;
    }
    co_await draining;
    (void)before;
  }
  EXPECT_TRUE(blocked) << "drain never blocked";
  EXPECT_LE(max_buffered, 64u * 1024 + chunk.size()) << "the buffer grew past the high mark";
  writer.write_eof();
  co_await reader.read();
  EXPECT_EQ(gate.received, sent);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, DrainBlocksAgainstAClientThatNeverReads) {
  run_bounded(drain_against_a_client_that_never_reads(), std::chrono::seconds(30));
}

// asyncio's _drain_helper: a drain waiting when the connection ends cleanly (abort gives
// connection_lost(None)) returns normally; only a later drain reports the loss.
weave::Coro<void> drain_waiting_through_an_abort() {
  Gate gate;
  weave::Server server = co_await gated_server(gate);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  const std::string chunk(64 * 1024, 'a');
  std::optional<weave::Task<void>> draining;
  for (int i = 0; i < 1000 && !draining; ++i) {
    writer.write(chunk);
    auto attempt = weave::create_task(writer.drain());
    co_await weave::sleep(1ms);
    if (!attempt.done()) {
      draining.emplace(std::move(attempt));
    } else {
      co_await attempt;
    }
  }
  EXPECT_TRUE(draining.has_value()) << "drain never blocked";
  writer.transport().abort();
  if (draining) co_await *draining;  // returns normally
  EXPECT_THROW(co_await writer.drain(), std::system_error);
  gate.open.set();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, DrainWaitingThroughAnAbortReturns) {
  run_bounded(drain_waiting_through_an_abort(), std::chrono::seconds(30));
}

weave::Coro<void> reset_the_client(weave::StreamReader, weave::StreamWriter writer) {
  linger l{1, 0};
  ::setsockopt(std::any_cast<int>(writer.get_extra_info("socket")), SOL_SOCKET, SO_LINGER, &l,
               sizeof l);
  writer.transport().abort();
  co_return;
}

weave::Coro<void> peer_reset_mid_read() {
  weave::Server server = co_await weave::start_server(reset_the_client, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  int err = 0;
  try {
    co_await reader.readline();
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNRESET);
  EXPECT_THROW(co_await writer.drain(), std::system_error);
  EXPECT_THROW(co_await writer.wait_closed(), std::system_error);
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, PeerResetMidRead) {
  run_bounded(peer_reset_mid_read());
}

weave::Coro<void> failing_callback(weave::StreamReader, weave::StreamWriter) {
  throw std::runtime_error("handler bug");
  co_return;
}

weave::Coro<void> failing_client_callback_is_reported() {
  auto& loop = weave::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](weave::EventLoop&, const weave::ExceptionContext& ctx) {
    reports.push_back(ctx.message);
  });
  weave::Server server = co_await weave::start_server(failing_callback, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  EXPECT_EQ(co_await reader.read(), "");  // the server closed the connection
  EXPECT_EQ(reports, std::vector<std::string>{"Unhandled exception in client_connected_cb"});
  writer.close();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, FailingClientCallbackIsReportedAndCloses) {
  run_bounded(failing_client_callback_is_reported());
}

weave::Coro<void> drop_handles(weave::StreamReader, weave::StreamWriter) {
  co_return;  // the handles go: the connection closes
}

weave::Coro<void> last_handle_closes_the_connection() {
  weave::Server server = co_await weave::start_server(drop_handles, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  EXPECT_EQ(co_await reader.read(), "");
  writer.close();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Streams, TheLastHandleClosesTheConnection) {
  run_bounded(last_handle_closes_the_connection());
}

weave::Coro<void> wait_for_a_line(weave::StreamReader reader, weave::StreamWriter writer) {
  std::string line = co_await reader.readline();
  if (!line.empty()) writer.write(line);
}

weave::Coro<void> close_clients_of_a_stream_server() {
  weave::Server server = co_await weave::start_server(wait_for_a_line, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  co_await weave::sleep(2ms);
  server.close();
  server.close_clients();
  EXPECT_EQ(co_await reader.read(), "");
  co_await server.wait_closed();
  writer.close();
}

TEST_F(Streams, CloseClientsOfAStreamServer) {
  run_bounded(close_clients_of_a_stream_server());
}

/// asyncio's Server.close() on a stream server: once it returns, connects are refused, the
/// connections the kernel had queued are reset without a client_connected call, and the
/// connection already made goes on until it ends.
weave::Coro<void> closed_stream_server_stops_accepting() {
  const int baseline = weave_test::open_fd_count();
  int connected = 0;
  weave::Server server = co_await weave::start_server(
      [&connected](weave::StreamReader r, weave::StreamWriter w) {
        ++connected;
        return echo_lines(std::move(r), std::move(w));
      },
      "127.0.0.1", 0);
  const std::uint16_t port = port_of(server);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port);
  writer.write("one\n");
  EXPECT_EQ(co_await reader.readline(), "one\n");
  std::vector<int> queued;
  for (int i = 0; i < 8; ++i) queued.push_back(weave_test::connect_blocking(port));
  server.close();  // the loop has not run since the connects
  EXPECT_EQ(weave_test::connect_error(port), ECONNREFUSED) << "still listening after close()";
  int err = 0;
  try {
    co_await weave::open_connection("127.0.0.1", port);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNREFUSED);
  std::vector<std::optional<int>> outcomes(queued.size());
  co_await weave_test::until([&] {
    for (std::size_t i = 0; i < queued.size(); ++i) {
      if (!outcomes[i]) outcomes[i] = weave_test::read_outcome(queued[i]);
    }
    return std::all_of(outcomes.begin(), outcomes.end(), [](auto& o) { return o.has_value(); });
  });
  for (const auto& o : outcomes) EXPECT_EQ(o, ECONNRESET);
  for (int fd : queued) ::close(fd);
  writer.write("two\n");
  EXPECT_EQ(co_await reader.readline(), "two\n");
  writer.close();
  co_await writer.wait_closed();
  co_await server.wait_closed();
  co_await weave::sleep(1ms);  // a poll of the backend, which reaps any late completion
  EXPECT_EQ(connected, 1);
  EXPECT_EQ(weave_test::open_fd_count(), baseline);
}

TEST_F(Streams, ClosedServerStopsAcceptingAtOnce) {
  run_bounded(closed_stream_server_stops_accepting());
}

weave::Coro<void> open_connection_refused() {
  std::uint16_t port;
  {
    weave::Socket probe(AF_INET, SOCK_STREAM);
    probe.bind(weave::SocketAddress::ip("127.0.0.1", 0));
    port = probe.getsockname().port();
  }
  int err = 0;
  try {
    co_await weave::open_connection("127.0.0.1", port);
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, ECONNREFUSED);
}

TEST_F(Streams, OpenConnectionRefused) {
  run_bounded(open_connection_refused());
}

// ---- pipes (what subprocess streams are made of) ------------------------------------------------

weave::Coro<void> write_and_close(weave::StreamWriter writer, std::string data) {
  writer.write(data);
  co_await writer.drain();
  writer.write_eof();  // a pipe's write_eof closes it
}

weave::Coro<void> pipe_streams() {
  auto& loop = weave::get_running_loop();
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  weave::StreamReader reader = weave::detail::pipe_reader(loop, fds[0]);
  weave::StreamWriter writer = weave::detail::pipe_writer(loop, fds[1]);
  EXPECT_FALSE(reader.at_eof());
  std::string data(3 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  auto writing = weave::create_task(write_and_close(std::move(writer), data));
  EXPECT_EQ(co_await reader.read(), data);  // more than a pipe holds: drain had to wait
  EXPECT_TRUE(reader.at_eof());
  co_await writing;
}

TEST_F(Streams, PipeReaderAndWriter) {
  run_bounded(pipe_streams());
}

weave::Coro<void> pipe_without_reader() {
  auto& loop = weave::get_running_loop();
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);
  weave::StreamWriter writer = weave::detail::pipe_writer(loop, fds[1]);
  writer.write("nobody listens");
  int err = 0;
  try {
    co_await writer.drain();
    co_await writer.drain();
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  EXPECT_EQ(err, EPIPE);
}

TEST_F(Streams, PipeWithoutReaderFailsWithEpipe) {
  run_bounded(pipe_without_reader());
}

// ---- readuntil with several separators (3.13) --------------------------------------------------
weave::Coro<void> readuntil_several_separators() {
  weave::StreamReader r;
  r.feed_data("a\r\nb\nc;;d");
  auto reading_first = r.readuntil({"\n", "\r\n"});
  std::string first = co_await reading_first;
  EXPECT_EQ(first, "a\r\n");  // both end there: either is this line; the match ends first
  auto reading_second = r.readuntil({"\r\n", "\n"});
  std::string second = co_await reading_second;
  EXPECT_EQ(second, "b\n");
  std::vector<std::string> seps{";;", ";"};
  std::string third = co_await r.readuntil(seps);  // ";" ends before ";;"
  EXPECT_EQ(third, "c;");
  auto waiting = weave::create_task(r.readuntil({"xyz", "!"}));
  co_await weave::sleep(0s);
  EXPECT_FALSE(waiting.done());
  r.feed_data("x!y");
  std::string fourth = co_await waiting;
  EXPECT_EQ(fourth, ";dx!");
  bool empty_refused = false;
  try {
    std::vector<std::string> none;
    (void)co_await r.readuntil(none);
  } catch (const weave::ValueError&) {
    empty_refused = true;
  }
  EXPECT_TRUE(empty_refused);
  r.feed_eof();
  bool incomplete = false;
  try {
    auto reading_last = r.readuntil({"\n", "\r"});
    (void)co_await reading_last;
  } catch (const weave::IncompleteReadError& e) {
    incomplete = e.partial == "y";
  }
  EXPECT_TRUE(incomplete);
}
TEST_F(Streams, ReaduntilWithSeveralSeparatorsTakesTheEarliestEnd) {
  run_bounded(readuntil_several_separators());
}

weave::Coro<void> readuntil_several_limit() {
  weave::StreamReader r(4);
  r.feed_data("abcdefgh");
  bool overrun = false;
  try {
    auto reading = r.readuntil({"zz", "z"});
    (void)co_await reading;
  } catch (const weave::LimitOverrunError& e) {
    overrun = e.consumed == 7;  // buffer length + 1 - longest separator
  }
  EXPECT_TRUE(overrun);
  std::string kept = co_await r.read(8);
  EXPECT_EQ(kept, "abcdefgh");  // the data stays buffered
}
TEST_F(Streams, ReaduntilWithSeveralSeparatorsHonoursTheLimit) {
  run_bounded(readuntil_several_limit());
}

// ---- asyncio's sock=, several hosts, Happy Eyeballs options ------------------------------------

weave::Coro<void> streams_over_the_callers_sockets() {
  weave::Socket bound(AF_INET, SOCK_STREAM);
  bound.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  const std::uint16_t port = bound.getsockname().port();
  weave::Server server = co_await weave::start_server(echo_lines, std::move(bound));
  EXPECT_EQ(port_of(server), port);
  weave::Socket mine(AF_INET, SOCK_STREAM);
  co_await weave::get_running_loop().sock_connect(mine,
                                                  weave::SocketAddress::ip("127.0.0.1", port));
  auto [reader, writer] = co_await weave::open_connection(std::move(mine));
  writer.write("over my socket\n");
  std::string line = co_await reader.readline();
  EXPECT_EQ(line, "over my socket\n");
  EXPECT_EQ(writer.get_extra_info("peername").port(), port);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();

  // Unix sockets too.
  const std::string path = "/tmp/weave-streams-sock-" + std::to_string(getpid()) + ".sock";
  weave::Socket unix_bound(AF_UNIX, SOCK_STREAM);
  unix_bound.bind(weave::SocketAddress::unix_path(path));
  weave::Server unix_server = co_await weave::start_server(echo_lines, std::move(unix_bound));
  weave::Socket unix_mine(AF_UNIX, SOCK_STREAM);
  co_await weave::get_running_loop().sock_connect(unix_mine, weave::SocketAddress::unix_path(path));
  auto [r2, w2] = co_await weave::open_connection(std::move(unix_mine));
  w2.write("unix\n");
  line = co_await r2.readline();
  EXPECT_EQ(line, "unix\n");
  w2.close();
  co_await w2.wait_closed();
  unix_server.close();
  co_await unix_server.wait_closed();
  ::unlink(path.c_str());
}

TEST_F(Streams, OverTheCallersSockets) {
  run_bounded(streams_over_the_callers_sockets());
}

weave::Coro<void> stream_server_on_several_hosts() {
  std::vector<std::string> hosts{"127.0.0.1", "::1"};
  weave::Server server = co_await weave::start_server(echo_lines, std::move(hosts), 0);
  EXPECT_EQ(server.sockets().size(), 2U);
  for (const weave::Socket& listening : server.sockets()) {
    const weave::SocketAddress at = listening.getsockname();
    // Happy Eyeballs options pass through to create_connection.
    weave::StreamOptions opts;
    opts.happy_eyeballs_delay = 250ms;
    opts.interleave = 1;
    auto [reader, writer] = co_await weave::open_connection(at.host(), at.port(), opts);
    writer.write(at.host() + "\n");
    std::string line = co_await reader.readline();
    EXPECT_EQ(line, at.host() + "\n");
    writer.close();
    co_await writer.wait_closed();
  }
  server.close();
  co_await server.wait_closed();

  // all_errors: an ExceptionGroup, here of the one refused address.
  weave::Socket probe(AF_INET, SOCK_STREAM);
  probe.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  const std::uint16_t closed_port = probe.getsockname().port();
  probe.close();
  weave::StreamOptions all;
  all.all_errors = true;
  std::size_t n = 0;
  try {
    co_await weave::open_connection("127.0.0.1", closed_port, all);
  } catch (const weave::ExceptionGroup& g) {
    n = g.exceptions().size();
  }
  EXPECT_EQ(n, 1U);
}

TEST_F(Streams, ServerOnSeveralHosts) {
  if (!weave_test::have_ipv6_loopback()) GTEST_SKIP() << "this machine has no IPv6 loopback (::1)";
  run_bounded(stream_server_on_several_hosts());
}

}  // namespace

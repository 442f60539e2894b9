#pragma once
/// \file streams.hpp
/// asyncio.streams: StreamReader and StreamWriter over a transport, open_connection and
/// start_server, and their Unix variants.
///
///   auto [reader, writer] = co_await weave::open_connection("127.0.0.1", 8888);
///   writer.write("ping\n");
///   co_await writer.drain();
///   std::string line = co_await reader.readline();
///
/// Readers and writers are cheap handles to one connection; the connection is closed when the
/// last handle of either kind is gone (asyncio closes it when the writer is collected).

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/generator.hpp"
#include "weave/tls.hpp"
#include "weave/transports.hpp"

namespace weave {

namespace detail {
struct StreamState;
struct StreamLife;
}  // namespace detail

/// Options of open_connection / start_server and their Unix variants.
struct StreamOptions {
  /// The reader's buffer limit (asyncio's `limit`): readuntil/readline fail past it, and reading
  /// from the transport pauses when twice as much is buffered.
  std::size_t limit = std::size_t{64} * 1024;
  // start_server only:
  int backlog = 128;
  bool reuse_address = true;
  bool reuse_port = false;
  bool start_serving = true;
  bool cleanup_socket = true;  ///< start_unix_server only: see ServerOptions
  bool keep_alive = false;     ///< see ServerOptions
  // open_connection only:
  std::optional<SocketAddress> local_addr{};
  /// Happy Eyeballs, the order of the addresses, and every error: see ConnectionOptions.
  std::optional<Clock::duration> happy_eyeballs_delay{};
  std::optional<int> interleave{};
  bool all_errors = false;
  /// The name for SNI and the certificate check (default: the host); see ConnectionOptions.
  std::optional<std::string> server_hostname{};
  // Both:
  /// Speak TLS: a client context for open_connection, a server context for start_server
  /// (see ConnectionOptions::ssl and ServerOptions::ssl for the errors).
  std::optional<SSLContext> ssl{};
  std::optional<Clock::duration> ssl_handshake_timeout{};  ///< asyncio's default: 60 s
  std::optional<Clock::duration> ssl_shutdown_timeout{};   ///< asyncio's default: 30 s
};

/// asyncio.StreamReader. Only one coroutine may wait on a reader at a time (RuntimeError).
class StreamReader {
 public:
  /// A reader fed by hand (feed_data / feed_eof), with no transport.
  explicit StreamReader(std::size_t limit = std::size_t{64} * 1024);

  /// Up to `n` bytes (n < 0: everything until EOF); empty at EOF. Errors: the connection's
  /// error (e.g. std::system_error ECONNRESET).
  ///
  /// `site`, here and in every wait of this file: the caller's line, which call graphs show
  /// while the task waits; leave it defaulted.
  Coro<std::string> read(std::ptrdiff_t n = -1, detail::CallSite site = detail::CallSite::here());
  /// Up to and including "\n"; the rest at EOF. Errors: ValueError when the line exceeds the
  /// limit (the line is dropped from the buffer).
  Coro<std::string> readline(detail::CallSite site = detail::CallSite::here());
  /// Exactly `n` bytes. Errors: IncompleteReadError (with `partial`) at EOF before `n`.
  Coro<std::string> readexactly(std::size_t n, detail::CallSite site = detail::CallSite::here());
  /// Up to and including `separator`. Errors: IncompleteReadError at EOF first (expected = 0);
  /// LimitOverrunError when the limit is reached first (the data stays buffered); ValueError for
  /// an empty separator. The separator is taken by value: the coroutine starts only when
  /// awaited, so a view could outlive the caller's string (as in create_task(readuntil(...))).
  Coro<std::string> readuntil(std::string separator = "\n",
                              detail::CallSite site = detail::CallSite::here());
  /// Python 3.13's readuntil with several separators: up to and including the one whose match
  /// ends first (the shortest, when several end at once). Errors: as readuntil; ValueError for
  /// no separator or an empty one.
  Coro<std::string> readuntil(std::vector<std::string> separators,
                              detail::CallSite site = detail::CallSite::here());
  Coro<std::string> readuntil(std::initializer_list<std::string_view> separators,
                              detail::CallSite site = detail::CallSite::here()) {
    return readuntil(std::vector<std::string>(separators.begin(), separators.end()), site);
  }
  /// `async for line in reader`: each line as readline() returns it ("\n" included; the last
  /// may lack it), until EOF. The generator holds its own handle to the reader.
  /// Errors: as readline().
  AsyncGenerator<std::string> lines(detail::CallSite site = detail::CallSite::here());
  /// Reads into `buffer` without an intermediate string; returns the count (0 at EOF).
  Coro<std::size_t> read_into(std::span<char> buffer,
                              detail::CallSite site = detail::CallSite::here());
  /// True when the buffer is empty and EOF was fed.
  bool at_eof() const noexcept;

  void feed_data(std::string_view data);
  void feed_eof();
  void set_exception(std::exception_ptr exc);
  std::exception_ptr exception() const noexcept;

  StreamReader(std::shared_ptr<detail::StreamState> state,
               std::shared_ptr<detail::StreamLife> life) noexcept;

 private:
  std::shared_ptr<detail::StreamState> state_;
  std::shared_ptr<detail::StreamLife> life_;
};

/// asyncio.StreamWriter.
class StreamWriter {
 public:
  /// Buffered by the transport; call drain() to wait for room.
  void write(std::string_view data);
  void writelines(const std::vector<std::string>& lines);
  bool can_write_eof() const noexcept;
  void write_eof();
  /// Waits while the transport's buffer is above its high-water mark. Errors: the connection's
  /// error, or std::system_error(ECONNRESET) once the connection is lost.
  Coro<void> drain(detail::CallSite site = detail::CallSite::here());
  void close();
  bool is_closing() const noexcept;
  /// Waits until the connection is closed. Errors: the error that closed it, if any.
  Coro<void> wait_closed(detail::CallSite site = detail::CallSite::here());
  /// "peername", "sockname", "socket" (see Transport::get_extra_info); over TLS also
  /// "peercert", "cipher", "ssl_object", "sslcontext".
  ExtraInfo get_extra_info(std::string_view name) const;
  /// asyncio's StreamWriter.start_tls: drains, then upgrades the connection to TLS (the client
  /// side for open_connection's streams, the server side for start_server's); reading and
  /// writing go on through the same reader and writer. `server_hostname` names the server on
  /// the client side (required when the context checks host names). Errors: as
  /// EventLoop::start_tls; the connection is closed on failure. Cancellation: the connection
  /// is closed.
  Coro<void> start_tls(SSLContext context, std::string server_hostname = {},
                       std::optional<Clock::duration> ssl_handshake_timeout = std::nullopt,
                       std::optional<Clock::duration> ssl_shutdown_timeout = std::nullopt);
  Transport& transport() const noexcept;

  StreamWriter(std::shared_ptr<detail::StreamState> state,
               std::shared_ptr<detail::StreamLife> life) noexcept;

 private:
  std::shared_ptr<detail::StreamState> state_;
  std::shared_ptr<detail::StreamLife> life_;
};

/// What start_server calls for each connection, as a new task.
using ClientConnected = std::function<Coro<void>(StreamReader, StreamWriter)>;

/// asyncio.open_connection. Errors: as EventLoop::create_connection.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            StreamOptions opts = {});
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 StreamOptions opts = {});
/// asyncio.start_server: `client_connected(reader, writer)` runs as a task per connection; an
/// exception escaping it is reported to the loop's exception handler and closes the connection.
Coro<Server> start_server(ClientConnected client_connected, std::string host, std::uint16_t port,
                          StreamOptions opts = {});
Coro<Server> start_unix_server(ClientConnected client_connected, std::string path,
                               StreamOptions opts = {});
/// start_server on every address of several hosts, one Server (see EventLoop::create_server).
Coro<Server> start_server(ClientConnected client_connected, std::vector<std::string> hosts,
                          std::uint16_t port, StreamOptions opts = {});
/// asyncio's open_connection(sock=...): streams over `sock`, a stream socket connected already
/// (TCP or Unix). Errors: as EventLoop::create_connection(factory, sock, opts).
Coro<std::pair<StreamReader, StreamWriter>> open_connection(Socket sock, StreamOptions opts = {});
/// asyncio's start_server(sock=...): serves on `sock`, a bound stream socket (TCP or Unix).
/// Errors: as EventLoop::create_server(factory, sock, opts).
Coro<Server> start_server(ClientConnected client_connected, Socket sock, StreamOptions opts = {});

}  // namespace weave

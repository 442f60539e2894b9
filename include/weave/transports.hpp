#pragma once
/// \file transports.hpp
/// asyncio's callback layer: a Transport moves bytes, a Protocol is told what happened. The
/// loop creates both with create_connection / create_server (and their Unix variants, in
/// loop.hpp); the streams (streams.hpp) are built on them.
///
/// Calls into a Protocol happen on the loop thread: connection_made first, then any number of
/// data_received, at most one eof_received, and connection_lost exactly once, last.
/// pause_writing / resume_writing alternate, starting with pause_writing.

#include <any>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/sockets.hpp"
#include "weave/tls.hpp"

namespace weave {

class Transport;

/// asyncio.Protocol. Override what you need; the defaults do nothing.
class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual void connection_made(Transport& transport) { (void)transport; }
  /// `data` is valid only during the call.
  virtual void data_received(std::string_view data) { (void)data; }
  /// The peer closed its side. Return true to keep the transport open for writing (half-close);
  /// false closes it.
  virtual bool eof_received() { return false; }
  /// The connection is closed; `exc` is null after a regular close or EOF, else the error.
  virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
  /// The transport's write buffer went over the high-water mark.
  virtual void pause_writing() {}
  /// ... and back down to the low-water mark.
  virtual void resume_writing() {}
};

/// What get_extra_info returns: an empty std::any when the name is unknown. Holds a
/// SocketAddress for "peername"/"sockname", an int for "socket" (the fd).
class ExtraInfo : public std::any {
 public:
  using std::any::any;
  ExtraInfo(std::any value) : std::any(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  /// For "peername"/"sockname": the address's host and port. Errors: std::bad_any_cast.
  std::string host() const { return std::any_cast<const SocketAddress&>(*this).host(); }
  std::uint16_t port() const { return std::any_cast<const SocketAddress&>(*this).port(); }
};

/// What stream and datagram transports share: asyncio's BaseTransport (closing, extra info) and
/// the write-buffer control of its WriteTransport.
class BaseTransport {
 public:
  virtual ~BaseTransport() = default;

  /// Closes once the buffer is flushed; connection_lost(nullptr) follows. Idempotent.
  virtual void close() = 0;
  /// Closes at once, dropping the buffer; connection_lost(nullptr) follows.
  virtual void abort() = 0;
  virtual bool is_closing() const noexcept = 0;

  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  /// asyncio's defaults: high 64 KiB, low high/4. Errors: ValueError when low > high.
  virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                       std::optional<std::size_t> low = std::nullopt) = 0;
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;

  /// "peername", "sockname", "socket"; an empty value for other names, and for the peername of
  /// an unconnected datagram endpoint.
  virtual ExtraInfo get_extra_info(std::string_view name) const = 0;
};

/// asyncio.Transport (a ReadTransport and a WriteTransport). Always owned by a shared_ptr.
class Transport : public BaseTransport, public std::enable_shared_from_this<Transport> {
 public:
  /// Queues `data`: sent at once when the buffer is empty, else buffered (the caller may drop
  /// its copy). Ignored after close() or a lost connection.
  virtual void write(std::string_view data) = 0;
  void writelines(const std::vector<std::string>& lines) {
    for (const std::string& line : lines) write(line);
  }
  /// Closes the write side once the buffer is flushed (shutdown SHUT_WR); reading goes on.
  virtual void write_eof() = 0;
  virtual bool can_write_eof() const noexcept { return true; }

  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  virtual bool is_reading() const noexcept = 0;

  virtual Protocol& get_protocol() const noexcept = 0;
  virtual void set_protocol(std::shared_ptr<Protocol> protocol) = 0;
};

/// Makes the protocol of one connection.
using ProtocolFactory = std::function<std::shared_ptr<Protocol>()>;

/// A connection made by create_connection: the transport and the protocol the factory made.
struct Connection {
  std::shared_ptr<Transport> transport;
  std::shared_ptr<Protocol> protocol;
};

/// Options of create_connection / create_unix_connection.
struct ConnectionOptions {
  /// Bind the local end here first (asyncio's local_addr).
  std::optional<SocketAddress> local_addr{};
  /// Speak TLS with this client context: the handshake is done before connection_made and
  /// before create_connection returns. Errors then: SSLCertVerificationError when the server's
  /// certificate or host name does not verify, SSLError for other TLS failures,
  /// std::system_error (ECONNRESET) when the server hangs up, (ECONNABORTED) on the handshake
  /// timeout.
  std::optional<SSLContext> ssl{};
  /// The name for SNI and the certificate check; by default the host connected to. Errors:
  /// ValueError without `ssl`, or when empty while the context checks host names.
  std::optional<std::string> server_hostname{};
  /// asyncio's defaults: 60 s for the handshake, 30 s for the close_notify exchange on close.
  /// Errors: ValueError without `ssl`, or when not positive.
  std::optional<Clock::duration> ssl_handshake_timeout{};
  std::optional<Clock::duration> ssl_shutdown_timeout{};
  /// Happy Eyeballs (RFC 8305, asyncio's happy_eyeballs_delay; 250 ms is the RFC's value): the
  /// connect to the next resolved address starts after this delay, or at once when the attempt
  /// before it fails; the first attempt to connect wins, the others are cancelled and their
  /// sockets closed. Without it, the addresses are tried one after the other. Errors:
  /// ValueError when negative.
  std::optional<Clock::duration> happy_eyeballs_delay{};
  /// Reorders the resolved addresses by family (asyncio's interleave): one of each family in
  /// turn, the first `interleave - 1` of the first family ahead. Default: 1 with
  /// happy_eyeballs_delay, else 0 (the resolver's order). Errors: ValueError when negative.
  std::optional<int> interleave{};
  /// When no address connects: an ExceptionGroup "create_connection failed" holding every
  /// attempt's error, in the order tried (asyncio 3.12's all_errors). Without it, the only
  /// error, or the first when all read the same, else a std::system_error (the first's code)
  /// naming them all.
  bool all_errors = false;
};

/// Options of create_server / create_unix_server.
struct ServerOptions {
  int backlog = 128;
  bool reuse_address = true;  ///< asyncio's default on POSIX
  bool reuse_port = false;
  /// SO_KEEPALIVE on every accepted connection (asyncio 3.13's keep_alive): set on the
  /// listening socket, which accepted sockets inherit.
  bool keep_alive = false;
  /// False: the server is created but accepts only after start_serving() (asyncio's default
  /// is true).
  bool start_serving = true;
  /// create_unix_server only (asyncio 3.13's cleanup_socket): close() removes the socket file,
  /// if the path still names the socket bound.
  bool cleanup_socket = true;
  /// Speak TLS with this server context (SSLContext::server): each connection's protocol gets
  /// connection_made after its handshake; a client that fails the handshake is dropped
  /// without a word to the protocol factory's protocol. Errors: ValueError for a client
  /// context.
  std::optional<SSLContext> ssl{};
  /// As in ConnectionOptions.
  std::optional<Clock::duration> ssl_handshake_timeout{};
  std::optional<Clock::duration> ssl_shutdown_timeout{};
};

// ---- datagrams (asyncio's create_datagram_endpoint) -------------------------------------------

class DatagramTransport;

/// asyncio.DatagramProtocol. Calls happen on the loop thread: connection_made first, then any
/// number of datagram_received and error_received, and connection_lost exactly once, last.
class DatagramProtocol {
 public:
  virtual ~DatagramProtocol() = default;
  virtual void connection_made(DatagramTransport& transport) { (void)transport; }
  /// One datagram (possibly empty) from `addr`; `data` is valid only during the call.
  virtual void datagram_received(std::string_view data, const SocketAddress& addr) {
    (void)data;
    (void)addr;
  }
  /// A send or receive failed (a std::system_error: ECONNREFUSED after an ICMP port
  /// unreachable, EMSGSIZE, ...). The transport stays open; the datagram concerned is lost.
  /// By value, as Protocol::connection_lost takes it: an override may keep it.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void error_received(std::exception_ptr exc) { (void)exc; }
  /// The transport is closed; `exc` is null after close() or abort(), else the fatal error.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
  /// The write buffer went over the high-water mark, and back down to the low-water mark.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

/// asyncio.DatagramTransport. Always owned by a shared_ptr. get_write_buffer_size counts the
/// bytes of the datagrams not sent yet, plus 8 for each (as asyncio), so that empty ones weigh.
class DatagramTransport : public BaseTransport,
                          public std::enable_shared_from_this<DatagramTransport> {
 public:
  /// Sends `data` as one datagram (empty ones too) to `addr`, or to the remote address of a
  /// connected endpoint: at once, or buffered when the kernel would block (the caller may drop
  /// its copy). Ignored after close() or abort(). Errors: ValueError when `addr` is missing on
  /// an endpoint without remote address, or differs from a connected endpoint's.
  virtual void sendto(std::string_view data, std::optional<SocketAddress> addr) = 0;
  void sendto(std::string_view data) { sendto(data, std::nullopt); }

  virtual DatagramProtocol& get_protocol() const noexcept = 0;
  virtual void set_protocol(std::shared_ptr<DatagramProtocol> protocol) = 0;
};

/// Makes the protocol of a datagram endpoint.
using DatagramProtocolFactory = std::function<std::shared_ptr<DatagramProtocol>()>;

/// What create_datagram_endpoint returns: the transport and the protocol the factory made.
struct DatagramEndpoint {
  std::shared_ptr<DatagramTransport> transport;
  std::shared_ptr<DatagramProtocol> protocol;
};

/// asyncio's (host, port) pair: a name (resolved through the loop's getaddrinfo) or a numeric
/// IPv4/IPv6 address.
struct HostPort {
  HostPort() = default;
  HostPort(std::string h, std::uint16_t p) : host(std::move(h)), port(p) {}
  /// The numeric host and port of an address, e.g. another endpoint's "sockname".
  HostPort(const SocketAddress& a)  // NOLINT(google-explicit-constructor)
      : host(a.host()), port(a.port()) {}
  std::string host;
  std::uint16_t port = 0;
};

/// Options of create_datagram_endpoint (asyncio's keyword arguments).
struct DatagramEndpointOptions {
  /// Bind here (port 0 picks a free port).
  std::optional<HostPort> local_addr{};
  /// Connect here: sendto may then omit the address, and only this peer's datagrams arrive.
  std::optional<HostPort> remote_addr{};
  /// AF_INET or AF_INET6 restricts the resolution; 0 takes either. Without any address the
  /// family is what makes the socket, so it must then be given.
  int family = 0;
  int proto = 0;
  int flags = 0;  ///< getaddrinfo's flags
  bool reuse_port = false;
  /// SO_BROADCAST; a remote_addr is then only the default destination, not connected.
  bool allow_broadcast = false;
};

namespace detail {
struct ServerState;
}

/// asyncio.Server: listening sockets and the connections they accepted. A cheap handle; the
/// server keeps serving while the loop runs, whether or not a handle is kept, until close().
class Server {
 public:
  Server() noexcept = default;
  explicit Server(std::shared_ptr<detail::ServerState> state) noexcept : state_(std::move(state)) {}

  /// The listening sockets.
  const std::vector<Socket>& sockets() const;
  bool is_serving() const noexcept;
  /// Starts accepting (when created with start_serving = false). Idempotent. Accepting has
  /// begun on return; the result is an awaitable that is already complete, so that asyncio's
  /// `await server.start_serving()` reads the same, and a plain call works too.
  std::suspend_never start_serving();
  /// Stops listening and closes the sockets; connections already accepted go on.
  void close();
  /// Closes every accepted connection (their buffers are flushed first).
  void close_clients();
  /// Aborts every accepted connection.
  void abort_clients();
  /// Returns once the server is closed and every accepted connection has ended.
  Coro<void> wait_closed();
  /// Accepts until cancelled; cancellation closes the server. Errors: RuntimeError when the
  /// server is already closed or serve_forever is already running.
  Coro<void> serve_forever();

 private:
  std::shared_ptr<detail::ServerState> state_;
};

}  // namespace weave

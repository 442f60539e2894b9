// create_connection / create_server and their Unix variants: resolve, make the socket, connect
// or listen, and hand it to a SocketTransport or a ServerState; with `ssl`, an SSLTransport goes
// between the socket transport and the protocol (and start_tls puts one over a live transport).

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "net/happy_eyeballs.hpp"
#include "net/resolve.hpp"
#include "net/server_state.hpp"
#include "net/socket_transport.hpp"
#include "net/ssl_transport.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/task.hpp"

namespace weave {

namespace {

/// The stream addresses of `host`; a passive empty host means every interface of both stacks.
Coro<std::vector<SocketAddress>> resolve(EventLoop& loop, std::string host, std::uint16_t port,
                                         bool passive) {
  if (host.empty() && passive) {
    co_return std::vector<SocketAddress>{SocketAddress::ip("0.0.0.0", port),
                                         SocketAddress::ip("::", port)};
  }
  std::vector<AddrInfo> infos = co_await detail::resolve(
      loop, std::move(host), port, {AF_UNSPEC, SOCK_STREAM, 0, passive ? AI_PASSIVE : 0});
  std::vector<SocketAddress> out;
  out.reserve(infos.size());
  for (AddrInfo& info : infos) out.push_back(info.address);
  co_return out;
}

Connection start_transport(EventLoop& loop, Socket sock, const ProtocolFactory& factory) {
  std::shared_ptr<Protocol> protocol = factory();
  if (!protocol) throw ValueError("protocol factory returned null");
  auto transport =
      std::make_shared<detail::SocketTransport>(loop, std::move(sock), protocol, nullptr);
  transport->start();
  return Connection{transport, protocol};
}

/// asyncio's checks: the TLS-only options need `ssl`, and timeouts must be positive.
void check_ssl_options(bool ssl, const std::optional<Clock::duration>& handshake_timeout,
                       const std::optional<Clock::duration>& shutdown_timeout) {
  if (!ssl && handshake_timeout) {
    throw ValueError("ssl_handshake_timeout is only meaningful with ssl");
  }
  if (!ssl && shutdown_timeout)
    throw ValueError("ssl_shutdown_timeout is only meaningful with ssl");
  if (handshake_timeout && *handshake_timeout <= Clock::duration::zero()) {
    throw ValueError("ssl_handshake_timeout should be a positive number");
  }
  if (shutdown_timeout && *shutdown_timeout <= Clock::duration::zero()) {
    throw ValueError("ssl_shutdown_timeout should be a positive number");
  }
}

detail::SSLTransport::Options ssl_options(bool server_side, std::string server_hostname,
                                          const std::optional<Clock::duration>& handshake_timeout,
                                          const std::optional<Clock::duration>& shutdown_timeout) {
  detail::SSLTransport::Options o;
  o.server_side = server_side;
  o.server_hostname = std::move(server_hostname);
  if (handshake_timeout) o.handshake_timeout = *handshake_timeout;
  if (shutdown_timeout) o.shutdown_timeout = *shutdown_timeout;
  return o;
}

void check_server_ssl(const ServerOptions& opts) {
  check_ssl_options(opts.ssl.has_value(), opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout);
  if (opts.ssl && !opts.ssl->is_server()) {
    throw ValueError("a TLS server needs a server-side context (SSLContext::server)");
  }
}

/// The client side of create_connection with `ssl`: returns once the handshake is done.
Coro<Connection> start_ssl_transport(EventLoop& loop, Socket sock, const ProtocolFactory& factory,
                                     const ConnectionOptions& opts, std::string hostname) {
  std::shared_ptr<Protocol> protocol = factory();
  if (!protocol) throw ValueError("protocol factory returned null");
  Future<void> waiter = loop.create_future<void>();
  auto ssl = std::make_shared<detail::SSLTransport>(
      loop, *opts.ssl, protocol,
      ssl_options(false, std::move(hostname), opts.ssl_handshake_timeout,
                  opts.ssl_shutdown_timeout),
      waiter);
  auto transport = std::make_shared<detail::SocketTransport>(loop, std::move(sock),
                                                             ssl->lower_protocol(), nullptr);
  transport->start();
  std::exception_ptr failure;
  try {
    co_await waiter;
  } catch (...) {
    failure = std::current_exception();  // a failed handshake, or our cancellation
  }
  if (failure) {
    transport->close();
    std::rethrow_exception(failure);
  }
  co_return Connection{ssl, protocol};
}

Server make_server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets,
                   const ServerOptions& opts,
                   std::optional<detail::SocketFile> socket_file = std::nullopt) {
  auto state = std::make_shared<detail::ServerState>(loop, std::move(factory), std::move(sockets),
                                                     opts.backlog);
  state->socket_file = std::move(socket_file);
  if (opts.ssl) {
    state->wrap = [&loop, context = *opts.ssl,
                   o = ssl_options(true, {}, opts.ssl_handshake_timeout,
                                   opts.ssl_shutdown_timeout)](std::shared_ptr<Protocol> app) {
      auto ssl =
          std::make_shared<detail::SSLTransport>(loop, context, std::move(app), o, std::nullopt);
      return ssl->lower_protocol();
    };
  }
  if (opts.start_serving) state->start_serving();
  return Server(state);
}

}  // namespace

Coro<Connection> EventLoop::create_connection(ProtocolFactory factory, std::string host,
                                              std::uint16_t port, ConnectionOptions opts) {
  check_ssl_options(opts.ssl.has_value(), opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout);
  if (opts.server_hostname && !opts.ssl) {
    throw ValueError("server_hostname is only meaningful with ssl");
  }
  if (opts.happy_eyeballs_delay && *opts.happy_eyeballs_delay < Clock::duration::zero()) {
    throw ValueError("happy_eyeballs_delay must not be negative");
  }
  if (opts.interleave && *opts.interleave < 0) throw ValueError("interleave must not be negative");
  std::vector<SocketAddress> addresses = co_await resolve(*this, host, port, false);
  const int interleave = opts.interleave.value_or(opts.happy_eyeballs_delay ? 1 : 0);
  if (interleave > 0) addresses = detail::interleave_addresses(addresses, interleave);
  detail::ConnectPlan plan{opts.local_addr, opts.happy_eyeballs_delay, opts.all_errors};
  Socket sock = co_await detail::connect_any(*this, std::move(addresses), std::move(plan));
  detail::set_nodelay(sock.fd());
  if (!opts.ssl) co_return start_transport(*this, std::move(sock), factory);
  // The handshake's failures are not "try the next address" failures: they propagate.
  co_return co_await start_ssl_transport(*this, std::move(sock), factory, opts,
                                         opts.server_hostname.value_or(host));
}

Coro<Connection> EventLoop::create_unix_connection(ProtocolFactory factory, std::string path,
                                                   ConnectionOptions opts) {
  check_ssl_options(opts.ssl.has_value(), opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout);
  if (opts.server_hostname && !opts.ssl) {
    throw ValueError("server_hostname is only meaningful with ssl");
  }
  if (opts.ssl && !opts.server_hostname && opts.ssl->check_hostname()) {
    throw ValueError("you have to pass server_hostname when using ssl");
  }
  SocketAddress address = SocketAddress::unix_path(path);
  Socket sock(AF_UNIX, SOCK_STREAM);
  if (opts.local_addr) sock.bind(*opts.local_addr);
  co_await sock_connect(sock.fd(), address);
  if (opts.ssl) {
    co_return co_await start_ssl_transport(*this, std::move(sock), factory, opts,
                                           opts.server_hostname.value_or(""));
  }
  co_return start_transport(*this, std::move(sock), factory);
}

Coro<Server> EventLoop::create_server(ProtocolFactory factory, std::string host, std::uint16_t port,
                                      ServerOptions opts) {
  std::vector<std::string> hosts{std::move(host)};
  co_return co_await create_server(std::move(factory), std::move(hosts), port, std::move(opts));
}

Coro<Server> EventLoop::create_server(ProtocolFactory factory, std::vector<std::string> hosts,
                                      std::uint16_t port, ServerOptions opts) {
  check_server_ssl(opts);
  if (hosts.empty()) throw ValueError("create_server: no host to listen on");
  // asyncio's host sequence: every address of every host, each once, in the order resolved.
  struct Target {
    SocketAddress address;
    bool optional_v6;  ///< the "every interface" IPv6 address, which a host may lack
  };
  std::vector<Target> targets;
  for (std::string& host : hosts) {
    const bool any = host.empty();
    std::vector<SocketAddress> addresses = co_await resolve(*this, std::move(host), port, true);
    for (SocketAddress& address : addresses) {
      const std::string name = address.to_string();
      const bool seen = std::any_of(targets.begin(), targets.end(),
                                    [&](const Target& t) { return t.address.to_string() == name; });
      const bool optional_v6 = any && address.family() == AF_INET6;
      if (!seen) targets.push_back({std::move(address), optional_v6});
    }
  }
  std::vector<Socket> sockets;  // closed again if a later address fails
  for (const Target& target : targets) {
    const SocketAddress& address = target.address;
    Socket sock;
    try {
      sock = Socket(address.family(), SOCK_STREAM);
    } catch (const std::system_error&) {
      if (target.optional_v6) continue;  // a host without IPv6 serves on IPv4 alone
      throw;
    }
    if (opts.reuse_address) sock.set_reuse_address(true);
    if (opts.reuse_port) sock.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
    if (opts.keep_alive) sock.set_option(SOL_SOCKET, SO_KEEPALIVE, 1);
    // Both stacks listen on their own sockets, as asyncio arranges with IPV6_V6ONLY.
    if (address.family() == AF_INET6) sock.set_option(IPPROTO_IPV6, IPV6_V6ONLY, 1);
    try {
      sock.bind(address);
    } catch (const std::system_error& e) {
      if (target.optional_v6 && e.code().value() == EADDRNOTAVAIL) continue;
      throw std::system_error(e.code(),
                              "error while attempting to bind on address " + address.to_string());
    }
    // Accepted connections inherit TCP_NODELAY from the listener: one call, not one per accept.
    detail::set_nodelay(sock.fd());
    sock.listen(opts.backlog);
    sockets.push_back(std::move(sock));
  }
  co_return make_server(*this, std::move(factory), std::move(sockets), opts);
}

Coro<Server> EventLoop::create_unix_server(ProtocolFactory factory, std::string path,
                                           ServerOptions opts) {
  check_server_ssl(opts);
  SocketAddress address = SocketAddress::unix_path(path);
  // A stale socket file from an earlier run is removed, as asyncio does.
  struct stat st {};
  if (!path.empty() && path[0] != '\0' && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(path.c_str());
  }
  Socket sock(AF_UNIX, SOCK_STREAM);
  sock.bind(address);
  // Identified now, while the path surely names our socket, so that close() removes the file only
  // if it still does. An abstract address has no file.
  std::optional<detail::SocketFile> file;
  if (opts.cleanup_socket && path[0] != '\0' && ::stat(path.c_str(), &st) == 0) {
    file = detail::SocketFile{path, st.st_dev, st.st_ino};
  }
  sock.listen(opts.backlog);
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return make_server(*this, std::move(factory), std::move(sockets), opts, std::move(file));
}

Coro<std::shared_ptr<Transport>> EventLoop::start_tls(
    std::shared_ptr<Transport> transport, std::shared_ptr<Protocol> protocol, SSLContext context,
    bool server_side, std::string server_hostname,
    std::optional<Clock::duration> ssl_handshake_timeout,
    std::optional<Clock::duration> ssl_shutdown_timeout) {
  if (!transport || !protocol) throw ValueError("start_tls: null transport or protocol");
  if (transport->is_closing()) throw RuntimeError("start_tls: the transport is closing");
  check_ssl_options(true, ssl_handshake_timeout, ssl_shutdown_timeout);
  Future<void> waiter = create_future<void>();
  detail::SSLTransport::Options o = ssl_options(server_side, std::move(server_hostname),
                                                ssl_handshake_timeout, ssl_shutdown_timeout);
  o.call_connection_made = false;  // the protocol has had it, for the plain connection
  auto ssl = std::make_shared<detail::SSLTransport>(*this, context, protocol, std::move(o), waiter);
  // asyncio's order: stop reading, swap the protocol, start the handshake and read again on
  // the next iteration, so that no byte reaches the old protocol after the swap.
  transport->pause_reading();
  auto lower = ssl->lower_protocol();
  transport->set_protocol(lower);
  Handle made = call_soon([lower, transport] { lower->connection_made(*transport); });
  Handle resumed = call_soon([transport] { transport->resume_reading(); });
  std::exception_ptr failure;
  try {
    co_await waiter;
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    made.cancel();
    resumed.cancel();
    transport->close();
    std::rethrow_exception(failure);
  }
  co_return ssl;
}

namespace {
void check_stream_socket(const Socket& sock) {
  int type = 0;
  socklen_t len = sizeof type;
  if (!sock.valid() || ::getsockopt(sock.fd(), SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
      type != SOCK_STREAM) {
    throw ValueError("a SOCK_STREAM socket was expected");
  }
}
}  // namespace

Coro<Server> EventLoop::create_server(ProtocolFactory factory, Socket sock, ServerOptions opts) {
  check_server_ssl(opts);
  check_stream_socket(sock);
  if (opts.reuse_port) sock.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
  if (opts.keep_alive) sock.set_option(SOL_SOCKET, SO_KEEPALIVE, 1);
  if (sock.getsockname().family() != AF_UNIX) detail::set_nodelay(sock.fd());
  sock.listen(opts.backlog);
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return make_server(*this, std::move(factory), std::move(sockets), opts);
}

Coro<Connection> EventLoop::create_connection(ProtocolFactory factory, Socket sock,
                                              ConnectionOptions opts) {
  check_ssl_options(opts.ssl.has_value(), opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout);
  if (opts.server_hostname && !opts.ssl) {
    throw ValueError("server_hostname is only meaningful with ssl");
  }
  if (opts.local_addr) throw ValueError("local_addr and sock cannot be given together");
  check_stream_socket(sock);
  if (sock.getsockname().family() != AF_UNIX) detail::set_nodelay(sock.fd());
  if (opts.ssl) {
    co_return co_await start_ssl_transport(*this, std::move(sock), factory, opts,
                                           opts.server_hostname.value_or(""));
  }
  co_return start_transport(*this, std::move(sock), factory);
}

Coro<Connection> EventLoop::connect_accepted_socket(ProtocolFactory factory, Socket sock) {
  check_stream_socket(sock);
  co_return start_transport(*this, std::move(sock), factory);
}

}  // namespace weave

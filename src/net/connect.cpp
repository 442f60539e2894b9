// create_connection / create_server and their Unix variants: resolve, make the socket, connect
// or listen, and hand it to a SocketTransport or a ServerState.

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "net/server_state.hpp"
#include "net/socket_transport.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave {

namespace {

/// Numeric hosts parse at once (asyncio's _ipaddr_info); names go through getaddrinfo.
Coro<std::vector<SocketAddress>> resolve(EventLoop& loop, std::string host, std::uint16_t port,
                                         bool passive) {
  if (host.empty() && passive) {
    co_return std::vector<SocketAddress>{SocketAddress::ip("0.0.0.0", port),
                                         SocketAddress::ip("::", port)};
  }
  try {
    co_return std::vector<SocketAddress>{SocketAddress::ip(host, port)};
  } catch (const ValueError&) {
  }
  std::vector<AddrInfo> infos =
      co_await loop.getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0, passive ? AI_PASSIVE : 0);
  std::vector<SocketAddress> out;
  for (AddrInfo& info : infos) out.push_back(info.address);
  co_return out;
}

void set_nodelay(const Socket& s) {
  const int on = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // asyncio sets it too
}

Connection start_transport(EventLoop& loop, Socket sock, const ProtocolFactory& factory) {
  std::shared_ptr<Protocol> protocol = factory();
  if (!protocol) throw ValueError("protocol factory returned null");
  auto transport =
      std::make_shared<detail::SocketTransport>(loop, std::move(sock), protocol, nullptr);
  transport->start();
  return Connection{transport, protocol};
}

Server make_server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets,
                   const ServerOptions& opts) {
  auto state = std::make_shared<detail::ServerState>(loop, std::move(factory), std::move(sockets),
                                                     opts.backlog);
  if (opts.start_serving) state->start_serving();
  return Server(state);
}

}  // namespace

Coro<Connection> EventLoop::create_connection(ProtocolFactory factory, std::string host,
                                              std::uint16_t port, ConnectionOptions opts) {
  std::vector<SocketAddress> addresses = co_await resolve(*this, host, port, false);
  std::exception_ptr last_error;
  for (const SocketAddress& address : addresses) {
    try {
      Socket sock(address.family(), SOCK_STREAM);
      if (opts.local_addr) sock.bind(*opts.local_addr);
      co_await sock_connect(sock.fd(), address);
      set_nodelay(sock);
      co_return start_transport(*this, std::move(sock), factory);
    } catch (const std::system_error&) {
      last_error = std::current_exception();  // try the next address, as asyncio does
    }
  }
  if (last_error) std::rethrow_exception(last_error);
  throw os_error(EHOSTUNREACH, "create_connection: no address to connect to");
}

Coro<Connection> EventLoop::create_unix_connection(ProtocolFactory factory, std::string path,
                                                   ConnectionOptions opts) {
  SocketAddress address = SocketAddress::unix_path(path);
  Socket sock(AF_UNIX, SOCK_STREAM);
  if (opts.local_addr) sock.bind(*opts.local_addr);
  co_await sock_connect(sock.fd(), address);
  co_return start_transport(*this, std::move(sock), factory);
}

Coro<Server> EventLoop::create_server(ProtocolFactory factory, std::string host, std::uint16_t port,
                                      ServerOptions opts) {
  std::vector<SocketAddress> addresses = co_await resolve(*this, host, port, true);
  std::vector<Socket> sockets;
  for (const SocketAddress& address : addresses) {
    const bool optional_v6 = host.empty() && address.family() == AF_INET6;
    Socket sock;
    try {
      sock = Socket(address.family(), SOCK_STREAM);
    } catch (const std::system_error&) {
      if (optional_v6) continue;  // a host without IPv6 serves on IPv4 alone
      throw;
    }
    if (opts.reuse_address) sock.set_reuse_address(true);
    if (opts.reuse_port) sock.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
    // Both stacks listen on their own sockets, as asyncio arranges with IPV6_V6ONLY.
    if (address.family() == AF_INET6) sock.set_option(IPPROTO_IPV6, IPV6_V6ONLY, 1);
    try {
      sock.bind(address);
    } catch (const std::system_error& e) {
      if (optional_v6 && e.code().value() == EADDRNOTAVAIL) continue;
      throw std::system_error(e.code(),
                              "error while attempting to bind on address " + address.to_string());
    }
    sock.listen(opts.backlog);
    sockets.push_back(std::move(sock));
  }
  co_return make_server(*this, std::move(factory), std::move(sockets), opts);
}

Coro<Server> EventLoop::create_unix_server(ProtocolFactory factory, std::string path,
                                           ServerOptions opts) {
  SocketAddress address = SocketAddress::unix_path(path);
  // A stale socket file from an earlier run is removed, as asyncio does.
  struct stat st {};
  if (!path.empty() && path[0] != '\0' && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(path.c_str());
  }
  Socket sock(AF_UNIX, SOCK_STREAM);
  sock.bind(address);
  sock.listen(opts.backlog);
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return make_server(*this, std::move(factory), std::move(sockets), opts);
}

}  // namespace weave

// create_datagram_endpoint and its transport (asyncio's base_events.create_datagram_endpoint and
// selector_events._SelectorDatagramTransport), on the backend's readiness watches, so that both
// backends run the same code.

#include "net/datagram_transport.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

#include "core/loop_impl.hpp"
#include "net/resolve.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

namespace {

/// The largest UDP payload over IPv4 or IPv6 (without jumbograms) fits, so nothing is truncated.
constexpr std::size_t kMaxDatagram = std::size_t{64} * 1024;
/// What each buffered datagram adds to get_write_buffer_size besides its bytes, as asyncio
/// counts it: empty datagrams must weigh something, or flow control would never see them.
constexpr std::size_t kHeaderSize = 8;
/// Datagrams read per readiness event: the watch is level-triggered, so the rest comes with the
/// next poll, and a flooded socket cannot starve the loop's other callbacks.
constexpr int kReadBudget = 256;

bool would_block(int err) noexcept {
  return err == EAGAIN || err == EWOULDBLOCK;
}

/// asyncio compares (host, port) tuples; the raw storage may differ in bytes that do not count.
bool same_address(const SocketAddress& a, const SocketAddress& b) {
  return a.family() == b.family() && a.port() == b.port() && a.host() == b.host();
}

}  // namespace

DatagramSocketTransport::DatagramSocketTransport(EventLoop& loop, Socket sock,
                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                 std::optional<SocketAddress> remote,
                                                 bool connected)
    : loop_(loop),
      impl_(loop.impl()),
      sock_(std::move(sock)),
      protocol_(std::move(protocol)),
      remote_(remote),
      rbuf_(new char[kMaxDatagram]),
      connected_(connected) {
  read_side_.owner = this;
  write_side_.owner = this;
}

DatagramSocketTransport::~DatagramSocketTransport() {
  if (detached_) return;
  unwatch(io::Interest::Read, reads_watched_);
  unwatch(io::Interest::Write, writes_watched_);
  impl_.datagrams.erase(this);
}

void DatagramSocketTransport::start(Future<void> waiter) {
  self_ = shared();
  impl_.datagrams.insert(this);
  loop_.call_soon([self = self_] {
    try {
      self->protocol_->connection_made(*self);
    } catch (...) {
      const std::exception_ptr exc = std::current_exception();
      self->loop_.call_exception_handler({"protocol.connection_made() failed", exc, std::nullopt});
      self->force_close(exc);
    }
  });
  loop_.call_soon([self = self_] {
    if (!self->closing_) self->watch(io::Interest::Read, &self->read_side_, self->reads_watched_);
  });
  loop_.call_soon([waiter]() mutable {
    if (!waiter.done()) waiter.set_result();
  });
}

// ---- watches
// -------------------------------------------------------------------------------------

void DatagramSocketTransport::watch(io::Interest interest, io::ReadyListener* listener,
                                    bool& watched) {
  if (watched || !impl_.backend_) return;
  impl_.backend_->watch(sock_.fd(), interest, listener);
  watched = true;
}

void DatagramSocketTransport::unwatch(io::Interest interest, bool& watched) noexcept {
  if (!watched) return;
  watched = false;
  if (impl_.backend_) impl_.backend_->unwatch(sock_.fd(), interest);
}

// ---- receiving
// -----------------------------------------------------------------------------------

void DatagramSocketTransport::on_readable() noexcept {
  // self_ keeps us alive while the protocol closes us or drops its last reference.
  for (int i = 0; i < kReadBudget && !closing_; ++i) {
    SocketAddress from;
    *from.size_ptr() = sizeof(sockaddr_storage);
    const ssize_t n =
        ::recvfrom(sock_.fd(), rbuf_.get(), kMaxDatagram, 0, from.data(), from.size_ptr());
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      // The queued ICMP error (ECONNREFUSED, ...) is consumed by this recvfrom: reading goes on
      // with the next readiness.
      if (!would_block(err)) report(err, "recvfrom");
      return;
    }
    try {
      protocol_->datagram_received(std::string_view(rbuf_.get(), static_cast<std::size_t>(n)),
                                   from);
    } catch (...) {
      // asyncio lets this reach the loop's handler; the transport is not at fault.
      loop_.call_exception_handler(
          {"protocol.datagram_received() failed", std::current_exception(), std::nullopt});
    }
  }
}

void DatagramSocketTransport::report(int error, const char* what) noexcept {
  try {
    protocol_->error_received(std::make_exception_ptr(os_error(error, what)));
  } catch (...) {
    loop_.call_exception_handler(
        {"protocol.error_received() failed", std::current_exception(), std::nullopt});
  }
}

// ---- sending
// -------------------------------------------------------------------------------------

int DatagramSocketTransport::transmit(std::string_view data, const SocketAddress& to) noexcept {
  for (;;) {
    const ssize_t n = connected_ ? ::send(sock_.fd(), data.data(), data.size(), MSG_NOSIGNAL)
                                 : ::sendto(sock_.fd(), data.data(), data.size(), MSG_NOSIGNAL,
                                            to.data(), to.size());
    if (n >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

void DatagramSocketTransport::sendto(std::string_view data, std::optional<SocketAddress> addr) {
  if (remote_) {
    if (addr && !same_address(*addr, *remote_)) {
      throw ValueError("Invalid address: must be omitted or " + remote_->to_string());
    }
  } else if (!addr) {
    throw ValueError("Invalid address: an endpoint without remote_addr needs one");
  }
  if (closing_) return;
  const SocketAddress& to = addr ? *addr : *remote_;
  if (wbuf_.empty()) {
    const int err = transmit(data, to);
    if (err == 0) return;
    if (!would_block(err)) {
      report(err, "sendto");
      return;
    }
    watch(io::Interest::Write, &write_side_, writes_watched_);
  }
  wbuf_.push_back(Pending{std::string(data), to});
  wsize_ += data.size() + kHeaderSize;
  flow_.maybe_pause(wsize_, *protocol_, loop_);
}

void DatagramSocketTransport::on_writable() noexcept {
  while (!wbuf_.empty()) {
    const int err = transmit(wbuf_.front().data, wbuf_.front().to);
    if (would_block(err)) break;
    wsize_ -= wbuf_.front().data.size() + kHeaderSize;
    wbuf_.pop_front();
    if (err != 0) {
      // As asyncio: the datagram is dropped, and the rest waits for the next readiness.
      report(err, "sendto");
      return;
    }
  }
  flow_.maybe_resume(wsize_, *protocol_, loop_);  // may send more
  if (!wbuf_.empty()) return;
  unwatch(io::Interest::Write, writes_watched_);
  if (closing_ && !lost_) {
    lost_ = true;
    call_connection_lost(nullptr);
  }
}

void DatagramSocketTransport::set_write_buffer_limits(std::optional<std::size_t> high,
                                                      std::optional<std::size_t> low) {
  flow_.set_limits(high, low);
  flow_.maybe_pause(wsize_, *protocol_, loop_);
}

// ---- closing
// -------------------------------------------------------------------------------------

void DatagramSocketTransport::close() {
  if (closing_) return;
  closing_ = true;
  unwatch(io::Interest::Read, reads_watched_);
  if (wbuf_.empty()) {
    lost_ = true;
    loop_.call_soon([self = shared()] { self->call_connection_lost(nullptr); });
  }
}

void DatagramSocketTransport::abort() {
  force_close(nullptr);
}

void DatagramSocketTransport::force_close(const std::exception_ptr& exc) noexcept {
  if (lost_) return;
  wbuf_.clear();
  wsize_ = 0;
  unwatch(io::Interest::Write, writes_watched_);
  closing_ = true;
  unwatch(io::Interest::Read, reads_watched_);
  lost_ = true;
  loop_.call_soon([self = shared(), exc] { self->call_connection_lost(exc); });
}

void DatagramSocketTransport::call_connection_lost(const std::exception_ptr& exc) noexcept {
  try {
    protocol_->connection_lost(exc);
  } catch (...) {
    loop_.call_exception_handler(
        {"protocol.connection_lost() failed", std::current_exception(), std::nullopt});
  }
  release();
}

void DatagramSocketTransport::release() noexcept {
  unwatch(io::Interest::Read, reads_watched_);
  unwatch(io::Interest::Write, writes_watched_);
  impl_.datagrams.erase(this);
  sock_.close();
  auto keep = std::move(self_);  // may be the last reference: this dies with `keep`
}

void DatagramSocketTransport::detach_from_loop() noexcept {
  if (detached_) return;
  closing_ = lost_ = true;
  wbuf_.clear();
  wsize_ = 0;
  detached_ = true;  // before release(), which may destroy us
  release();
}

// ---- the rest
// ------------------------------------------------------------------------------------

ExtraInfo DatagramSocketTransport::get_extra_info(std::string_view name) const {
  if (name == "peername") return connected_ ? names_.peername(sock_) : ExtraInfo();
  if (name == "sockname") return names_.sockname(sock_);
  if (name == "socket") return ExtraInfo(sock_.fd());
  return {};
}

void DatagramSocketTransport::set_protocol(std::shared_ptr<DatagramProtocol> protocol) {
  if (!protocol) throw ValueError("set_protocol: null protocol");
  protocol_ = std::move(protocol);
}

}  // namespace weave::detail

namespace weave {

namespace {

/// One family's (protocol, local address, remote address), as asyncio pairs them.
struct AddressPair {
  int family = 0;
  int protocol = 0;
  std::optional<SocketAddress> local;
  std::optional<SocketAddress> remote;
};

/// asyncio's pairing: each side is resolved, the results are grouped by (family, protocol) in
/// the order they first appear, and only the groups that have every side asked for remain.
Coro<std::vector<AddressPair>> address_pairs(EventLoop& loop, const DatagramEndpointOptions& opts) {
  if (!opts.local_addr && !opts.remote_addr) {
    if (opts.family == 0) throw ValueError("unexpected address family");
    co_return std::vector<AddressPair>{AddressPair{opts.family, opts.proto, {}, {}}};
  }
  const detail::ResolveHints hints{opts.family, SOCK_DGRAM, opts.proto, opts.flags};
  std::vector<AddressPair> pairs;
  for (int side = 0; side < 2; ++side) {
    const bool local = side == 0;
    const std::optional<HostPort>& end = local ? opts.local_addr : opts.remote_addr;
    if (!end) continue;
    std::vector<AddrInfo> infos = co_await detail::resolve(loop, end->host, end->port, hints);
    if (infos.empty()) throw os_error(EADDRNOTAVAIL, "getaddrinfo() returned empty list");
    for (AddrInfo& info : infos) {
      auto it = std::find_if(pairs.begin(), pairs.end(), [&](const AddressPair& p) {
        return p.family == info.family && p.protocol == info.protocol;
      });
      if (it == pairs.end())
        it = pairs.insert(pairs.end(), AddressPair{info.family, info.protocol, {}, {}});
      std::optional<SocketAddress>& slot = local ? it->local : it->remote;
      if (!slot) slot = info.address;  // getaddrinfo's preferred address of the family
    }
  }
  std::erase_if(pairs, [&](const AddressPair& p) {
    return (opts.local_addr && !p.local) || (opts.remote_addr && !p.remote);
  });
  if (pairs.empty()) throw ValueError("can not get address information");
  co_return pairs;
}

/// A socket made, bound and connected as `pair` says. Errors: std::system_error.
Coro<Socket> open_endpoint(EventLoop& loop, const AddressPair& pair,
                           const DatagramEndpointOptions& opts) {
  Socket sock(pair.family, SOCK_DGRAM, pair.protocol);
  if (opts.reuse_port) sock.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
  if (opts.allow_broadcast) sock.set_option(SOL_SOCKET, SO_BROADCAST, 1);
  if (pair.local) sock.bind(*pair.local);
  // A broadcasting socket stays unconnected: the remote address is only sendto's default.
  if (pair.remote && !opts.allow_broadcast) co_await loop.sock_connect(sock.fd(), *pair.remote);
  co_return sock;
}

/// Returns once connection_made has run, as asyncio's waiter does.
Coro<DatagramEndpoint> start_endpoint(EventLoop& loop, Socket sock,
                                      const DatagramProtocolFactory& factory,
                                      std::optional<SocketAddress> remote, bool connected) {
  std::shared_ptr<DatagramProtocol> protocol = factory();
  if (!protocol) throw ValueError("protocol factory returned null");
  auto transport = std::make_shared<detail::DatagramSocketTransport>(loop, std::move(sock),
                                                                     protocol, remote, connected);
  Future<void> waiter = loop.create_future<void>();
  transport->start(waiter);
  std::exception_ptr failure;
  try {
    co_await waiter;
  } catch (...) {
    failure = std::current_exception();  // our cancellation
  }
  if (failure) {
    transport->close();
    std::rethrow_exception(failure);
  }
  co_return DatagramEndpoint{transport, protocol};
}

}  // namespace

Coro<DatagramEndpoint> EventLoop::create_datagram_endpoint(DatagramProtocolFactory factory,
                                                           DatagramEndpointOptions opts) {
  std::vector<AddressPair> pairs = co_await address_pairs(*this, opts);
  std::exception_ptr first_error;
  for (const AddressPair& pair : pairs) {
    Socket sock;
    try {
      sock = co_await open_endpoint(*this, pair, opts);
    } catch (const std::system_error&) {
      if (!first_error) first_error = std::current_exception();  // asyncio raises the first
      continue;
    }
    const bool connected = pair.remote && !opts.allow_broadcast;
    co_return co_await start_endpoint(*this, std::move(sock), factory, pair.remote, connected);
  }
  std::rethrow_exception(first_error);
}

Coro<DatagramEndpoint> EventLoop::create_datagram_endpoint(DatagramProtocolFactory factory,
                                                           Socket sock) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(sock.fd(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_DGRAM) {
    throw ValueError("A datagram socket was expected");
  }
  std::optional<SocketAddress> remote;
  try {
    remote = sock.getpeername();
  } catch (const std::system_error&) {
    // not connected: every sendto names its address
  }
  const bool connected = remote.has_value();
  co_return co_await start_endpoint(*this, std::move(sock), factory, remote, connected);
}

}  // namespace weave

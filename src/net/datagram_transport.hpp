#pragma once
// The datagram transport over a UDP socket, as asyncio's _SelectorDatagramTransport: reads are
// driven by readiness, into a buffer of the transport's own that holds the largest datagram;
// sendto tries the kernel at once and buffers (data, address) pairs only on EAGAIN, with the
// write watch armed until they are out.
//
// Lifetime: the transport keeps itself alive (self_) from start() until connection_lost has
// run; the user's shared_ptr may keep the object, closed, for longer.

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "io/backend.hpp"
#include "net/socket_names.hpp"
#include "net/write_flow.hpp"
#include "weave/future.hpp"
#include "weave/transports.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

class LoopImpl;

class DatagramSocketTransport final : public DatagramTransport {
 public:
  /// `remote`: the default destination; `connected`: the socket is connected to it (false
  /// under allow_broadcast, where it is only a default).
  DatagramSocketTransport(EventLoop& loop, Socket sock, std::shared_ptr<DatagramProtocol> protocol,
                          std::optional<SocketAddress> remote, bool connected);
  ~DatagramSocketTransport() override;

  /// Schedules connection_made, then reading, then `waiter`'s result (all with call_soon, as
  /// asyncio does).
  void start(Future<void> waiter);

  void sendto(std::string_view data, std::optional<SocketAddress> addr) override;
  using DatagramTransport::sendto;
  void close() override;
  void abort() override;
  bool is_closing() const noexcept override { return closing_; }
  std::size_t get_write_buffer_size() const noexcept override { return wsize_; }
  void set_write_buffer_limits(std::optional<std::size_t> high,
                               std::optional<std::size_t> low) override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
    return flow_.limits();
  }
  ExtraInfo get_extra_info(std::string_view name) const override;
  DatagramProtocol& get_protocol() const noexcept override { return *protocol_; }
  void set_protocol(std::shared_ptr<DatagramProtocol> protocol) override;

  /// The loop is closing: stop watching, close the socket, and never touch the loop again.
  void detach_from_loop() noexcept;

 private:
  struct Pending {
    std::string data;
    SocketAddress to;
  };

  void on_readable() noexcept;
  void on_writable() noexcept;
  using ReadSide = io::ReadyCall<DatagramSocketTransport, &DatagramSocketTransport::on_readable>;
  using WriteSide = io::ReadyCall<DatagramSocketTransport, &DatagramSocketTransport::on_writable>;
  /// One datagram out: 0, or the errno.
  int transmit(std::string_view data, const SocketAddress& to) noexcept;
  /// A send or receive failed: the protocol's error_received, and the transport goes on.
  void report(int error, const char* what) noexcept;
  /// `watched` is the direction's flag (reads_watched_ or writes_watched_).
  void watch(io::Interest interest, io::ReadyListener* listener, bool& watched);
  void unwatch(io::Interest interest, bool& watched) noexcept;
  void force_close(const std::exception_ptr& exc) noexcept;
  void call_connection_lost(const std::exception_ptr& exc) noexcept;
  /// Lets go of the watches, the socket and the loop's registry.
  void release() noexcept;
  std::shared_ptr<DatagramSocketTransport> shared() {
    return std::static_pointer_cast<DatagramSocketTransport>(shared_from_this());
  }

  EventLoop& loop_;
  LoopImpl& impl_;
  Socket sock_;
  std::shared_ptr<DatagramProtocol> protocol_;
  std::shared_ptr<DatagramSocketTransport> self_;
  std::optional<SocketAddress> remote_;
  std::unique_ptr<char[]> rbuf_;  ///< one datagram, as large as UDP allows
  ReadSide read_side_;
  WriteSide write_side_;
  std::deque<Pending> wbuf_;
  std::size_t wsize_ = 0;  ///< what get_write_buffer_size reports
  WriteFlow flow_;
  SocketNames names_;
  bool connected_;
  bool closing_ = false;
  bool reads_watched_ = false;
  bool writes_watched_ = false;
  bool lost_ = false;      ///< connection_lost scheduled
  bool detached_ = false;  ///< the loop closed under us
};

}  // namespace weave::detail

#pragma once
// What the network suites (transports, streams, TLS) share: a protocol that records what it is
// told, a line echo handler for stream servers, a server's port, and raw clients that connect
// without the loop running.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "weave/weave.hpp"

namespace weave_test {

/// Records every call, and echoes when asked to. connection_made records "made after
/// handshake" when the transport already has TLS details, "made" otherwise.
class Recorder : public weave::Protocol {
 public:
  explicit Recorder(bool echo = false, bool keep_open_on_eof = false)
      : echo_(echo), keep_open_(keep_open_on_eof) {}
  void connection_made(weave::Transport& t) override {
    transport = &t;
    events.push_back(t.get_extra_info("cipher").has_value() ? "made after handshake" : "made");
  }
  void data_received(std::string_view data) override {
    received.append(data);
    if (echo_) transport->write(data);
  }
  bool eof_received() override {
    events.push_back("eof");
    return keep_open_;
  }
  void connection_lost(std::exception_ptr exc) override {
    events.push_back(exc ? "lost with error" : "lost");
    error = exc;
    if (lost && !lost->done()) lost->set_result();
  }
  void pause_writing() override { events.push_back("pause"); }
  void resume_writing() override { events.push_back("resume"); }

  /// Waits until connection_lost ran.
  weave::Coro<void> wait_lost() {
    if (!events.empty() && events.back().rfind("lost", 0) == 0) co_return;
    lost = weave::get_running_loop().create_future<void>();
    co_await *lost;
  }

  weave::Transport* transport = nullptr;
  std::vector<std::string> events;
  std::string received;
  std::exception_ptr error;
  std::optional<weave::Future<void>> lost;

 private:
  bool echo_;
  bool keep_open_;
};

/// The port of a server's first listening socket.
/// Whether ::1 can be bound: IPv6 may be switched off in the kernel or the container, which no
/// package brings back; the tests that listen on ::1 skip only then.
inline bool have_ipv6_loopback() {
  try {
    weave::Socket s(AF_INET6, SOCK_STREAM);
    s.bind(weave::SocketAddress::ip("::1", 0));
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

inline std::uint16_t port_of(const weave::Server& server) {
  return server.sockets().at(0).getsockname().port();
}

/// A stream server's handler: echoes each line until EOF, then closes.
inline weave::Coro<void> echo_lines(weave::StreamReader reader, weave::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

/// Connects to 127.0.0.1:`port` with blocking syscalls, so the loop does not run meanwhile: on
/// loopback the kernel completes the handshake into the listener's accept queue by itself.
/// Returns the fd, or -errno.
inline int connect_blocking(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

/// The errno a connect to `port` fails with; 0 when it connects (the socket is closed again).
inline int connect_error(std::uint16_t port) {
  const int fd = connect_blocking(port);
  if (fd < 0) return -fd;
  ::close(fd);
  return 0;
}

/// What a read on a raw client sees, without waiting: nullopt while nothing came, 0 for EOF, the
/// errno for an error (ECONNRESET: the connection was reset), -1 for data.
inline std::optional<int> read_outcome(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
  if (n > 0) return -1;
  if (n == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
  return errno;
}

}  // namespace weave_test

#pragma once
/// \file sockets.hpp
/// Sockets for the loop's low-level API (asyncio's loop.sock_* family): an owning, non-blocking
/// `Socket` and a `SocketAddress` that holds any sockaddr (IPv4, IPv6, Unix). Every fd weave
/// creates is non-blocking and close-on-exec.

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "weave/errors.hpp"

namespace weave {

/// An address of any family, as sockaddr_storage plus its length.
class SocketAddress {
 public:
  SocketAddress() noexcept = default;
  SocketAddress(const sockaddr* addr, socklen_t len) noexcept;

  /// A numeric IPv4 or IPv6 address ("127.0.0.1", "::1") and port. Errors: ValueError when
  /// `host` is not a numeric address (names go through getaddrinfo).
  static SocketAddress ip(std::string_view host, std::uint16_t port);
  /// A Unix socket path; a leading '\0' makes it an abstract address. Errors: ValueError when
  /// the path does not fit sockaddr_un.
  static SocketAddress unix_path(std::string_view path);

  int family() const noexcept { return storage_.ss_family; }
  /// The numeric host ("127.0.0.1", "::1"), or the path of a Unix address.
  std::string host() const;
  /// The port (0 for a Unix address).
  std::uint16_t port() const noexcept;
  /// "host:port", "[v6]:port" or the Unix path.
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  socklen_t* size_ptr() noexcept { return &len_; }

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

/// One result of getaddrinfo (asyncio's 5-tuple).
struct AddrInfo {
  int family = 0;
  int type = 0;
  int protocol = 0;
  std::string canonname;
  SocketAddress address;
};

/// asyncio.SendfileNotAvailableError: sendfile(2) cannot send this file over this socket and
/// the caller asked for no fallback.
class SendfileNotAvailableError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

/// The error category of getaddrinfo's EAI_* codes (messages from gai_strerror).
const std::error_category& gai_category() noexcept;

/// An owning socket fd (closed by the destructor), non-blocking and close-on-exec.
class Socket {
 public:
  Socket() noexcept = default;
  /// Errors: std::system_error from socket(2).
  Socket(int family, int type, int protocol = 0);
  /// Takes ownership of `fd`, which must already be non-blocking.
  static Socket adopt(int fd) noexcept;
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  int fd() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  /// Gives the fd up without closing it.
  int release() noexcept;
  void close() noexcept;

  /// Errors (all): std::system_error with the errno.
  void bind(const SocketAddress& address);
  void listen(int backlog = 128);
  void set_reuse_address(bool on = true);
  void set_option(int level, int name, int value);
  SocketAddress getsockname() const;
  SocketAddress getpeername() const;

 private:
  explicit Socket(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace weave

#include "weave/sockets.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "weave/errors.hpp"

namespace weave {

SocketAddress::SocketAddress(const sockaddr* addr, socklen_t len) noexcept {
  len_ = std::min<socklen_t>(len, sizeof storage_);
  std::memcpy(&storage_, addr, len_);
}

SocketAddress SocketAddress::ip(std::string_view host, std::uint16_t port) {
  const std::string h(host);
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  throw ValueError(std::string("not a numeric IP address: ").append(h));
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty() || path.size() >= sizeof un->sun_path) {
    throw ValueError("Unix socket path too long or empty");
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                  (path[0] == '\0' ? 0 : 1));
  return a;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (storage_.ss_family) {
    case AF_INET:
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                sizeof buf);
      return buf;
    case AF_INET6:
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                sizeof buf);
      return buf;
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const auto n = len_ > offsetof(sockaddr_un, sun_path)
                         ? static_cast<std::size_t>(len_ - offsetof(sockaddr_un, sun_path))
                         : 0;
      std::string path(un->sun_path, n);
      if (!path.empty() && path[0] != '\0') path.resize(std::strlen(path.c_str()));
      return path;
    }
    default:
      return {};
  }
}

std::uint16_t SocketAddress::port() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::to_string() const {
  // Appended piecewise: g++ 12 warns (-Wrestrict) on "[" + std::string + ... chains.
  std::string out;
  const bool v6 = storage_.ss_family == AF_INET6;
  if (v6) out.push_back('[');
  out.append(host());
  if (v6) out.push_back(']');
  if (storage_.ss_family == AF_INET || v6) out.append(":").append(std::to_string(port()));
  return out;
}

Socket::Socket(int family, int type, int protocol) {
  fd_ = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd_ < 0) throw os_error(errno, "socket");
}

Socket Socket::adopt(int fd) noexcept {
  return Socket(fd);
}

Socket::Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Socket::~Socket() {
  close();
}

int Socket::release() noexcept {
  return std::exchange(fd_, -1);
}

void Socket::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void Socket::bind(const SocketAddress& address) {
  if (::bind(fd_, address.data(), address.size()) < 0) throw os_error(errno, "bind");
}

void Socket::listen(int backlog) {
  if (::listen(fd_, backlog) < 0) throw os_error(errno, "listen");
}

void Socket::set_reuse_address(bool on) {
  set_option(SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}

void Socket::set_option(int level, int name, int value) {
  if (::setsockopt(fd_, level, name, &value, sizeof value) < 0) throw os_error(errno, "setsockopt");
}

SocketAddress Socket::getsockname() const {
  SocketAddress a;
  *a.size_ptr() = sizeof(sockaddr_storage);
  if (::getsockname(fd_, a.data(), a.size_ptr()) < 0) throw os_error(errno, "getsockname");
  return a;
}

SocketAddress Socket::getpeername() const {
  SocketAddress a;
  *a.size_ptr() = sizeof(sockaddr_storage);
  if (::getpeername(fd_, a.data(), a.size_ptr()) < 0) throw os_error(errno, "getpeername");
  return a;
}

}  // namespace weave

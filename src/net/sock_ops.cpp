// asyncio's loop.sock_* coroutines: each tries the syscall first and waits for readiness only
// when the kernel says EAGAIN, so a socket with data pending costs no wait at all.

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <memory>

#include "net/ready_wait.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave {

using detail::ReadyWait;
using io::Interest;

namespace {
bool would_block(int err) noexcept {
  return err == EAGAIN || err == EWOULDBLOCK;
}
}  // namespace

Coro<std::size_t> EventLoop::sock_recv_into(int fd, std::span<char> buffer, detail::CallSite site) {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "recv");
    co_await ReadyWait(*impl_, fd, Interest::Read, "sock_recv_into", &site);
  }
}

Coro<std::string> EventLoop::sock_recv(int fd, std::size_t nbytes, detail::CallSite site) {
  std::string data(nbytes, '\0');
  const std::size_t n =
      co_await sock_recv_into(fd, std::span<char>(data.data(), data.size()), site);
  data.resize(n);
  co_return data;
}

Coro<void> EventLoop::sock_sendall(int fd, std::string_view data, detail::CallSite site) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "send");
    co_await ReadyWait(*impl_, fd, Interest::Write, "sock_sendall", &site);
  }
}

Coro<std::pair<Socket, SocketAddress>> EventLoop::sock_accept(int fd, detail::CallSite site) {
  for (;;) {
    SocketAddress peer;
    *peer.size_ptr() = sizeof(sockaddr_storage);
    const int conn = ::accept4(fd, peer.data(), peer.size_ptr(), SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn >= 0) co_return std::pair<Socket, SocketAddress>(Socket::adopt(conn), peer);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "accept");
    co_await ReadyWait(*impl_, fd, Interest::Read, "sock_accept", &site);
  }
}

Coro<void> EventLoop::sock_connect(int fd, SocketAddress address, detail::CallSite site) {
  int rc;
  do {
    rc = ::connect(fd, address.data(), address.size());
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) co_return;
  if (errno != EINPROGRESS && !would_block(errno)) throw os_error(errno, "connect");
  co_await ReadyWait(*impl_, fd, Interest::Write, "sock_connect", &site);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) throw os_error(err, "connect");
}

Coro<std::pair<std::size_t, SocketAddress>> EventLoop::sock_recvfrom_into(int fd,
                                                                          std::span<char> buffer,
                                                                          detail::CallSite site) {
  for (;;) {
    SocketAddress from;
    *from.size_ptr() = sizeof(sockaddr_storage);
    const ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), 0, from.data(), from.size_ptr());
    if (n >= 0) co_return std::pair<std::size_t, SocketAddress>(static_cast<std::size_t>(n), from);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "recvfrom");
    co_await ReadyWait(*impl_, fd, Interest::Read, "sock_recvfrom_into", &site);
  }
}

Coro<std::pair<std::string, SocketAddress>> EventLoop::sock_recvfrom(int fd, std::size_t bufsize,
                                                                     detail::CallSite site) {
  std::string data(bufsize, '\0');
  auto [n, from] = co_await sock_recvfrom_into(fd, std::span<char>(data.data(), data.size()), site);
  data.resize(n);
  co_return std::pair<std::string, SocketAddress>(std::move(data), from);
}

Coro<std::size_t> EventLoop::sock_sendto(int fd, std::string_view data, SocketAddress address,
                                         detail::CallSite site) {
  for (;;) {
    const ssize_t n =
        ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, address.data(), address.size());
    if (n >= 0) co_return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "sendto");
    co_await ReadyWait(*impl_, fd, Interest::Write, "sock_sendto", &site);
  }
}

namespace {

/// The size of `count` bytes from `offset` of `file`, or to its end: nullopt when the file has
/// no size (a pipe, a character device), which the caller reads until end of file.
std::optional<std::size_t> bytes_to_send(int file, std::uint64_t offset,
                                         std::optional<std::size_t> count, bool* regular) {
  struct stat st {};
  if (::fstat(file, &st) < 0) throw os_error(errno, "fstat");
  *regular = S_ISREG(st.st_mode);
  if (!*regular) return count;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t left = offset >= size ? 0 : size - offset;
  return count ? std::min<std::uint64_t>(*count, left) : left;
}

}  // namespace

Coro<std::size_t> EventLoop::sock_sendfile(int fd, int file, std::uint64_t offset,
                                           std::optional<std::size_t> count, bool fallback,
                                           detail::CallSite site) {
  bool regular = false;
  const std::optional<std::size_t> total = bytes_to_send(file, offset, count, &regular);
  std::size_t sent = 0;
  if (regular) {
    // sendfile(2) moves page-cache pages to the socket without a copy through user space; it
    // advances `pos` itself and leaves the file's own position alone.
    auto pos = static_cast<off_t>(offset);
    bool refused = false;
    while (sent < *total) {
      const std::size_t chunk = std::min<std::size_t>(*total - sent, std::size_t{1} << 30);
      const ssize_t n = ::sendfile(fd, file, &pos, chunk);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0) break;  // the file shrank under us
      if (errno == EINTR) continue;
      if (would_block(errno)) {
        co_await ReadyWait(*impl_, fd, Interest::Write, "sock_sendfile", &site);
        continue;
      }
      if (sent == 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        refused = true;  // e.g. a socket type or file system sendfile(2) does not serve
        break;
      }
      throw os_error(errno, "sendfile");
    }
    if (!refused) {
      if (::lseek(file, static_cast<off_t>(offset + sent), SEEK_SET) < 0) {
        throw os_error(errno, "lseek");
      }
      co_return sent;
    }
  }
  if (!fallback) {
    throw SendfileNotAvailableError("sendfile(2) cannot send fd " + std::to_string(file) +
                                    " over socket " + std::to_string(fd));
  }
  // The fallback, as asyncio's _sock_sendfile_fallback: reads of at most 256 KiB and sendall.
  if (regular || offset != 0) {
    if (::lseek(file, static_cast<off_t>(offset), SEEK_SET) < 0) throw os_error(errno, "lseek");
  }
  const std::size_t limit = total.value_or(std::numeric_limits<std::size_t>::max());
  const std::size_t block = std::min<std::size_t>(limit, std::size_t{256} * 1024);
  std::unique_ptr<char[]> buf(new char[std::max<std::size_t>(block, 1)]);
  while (sent < limit) {
    const std::size_t want = std::min(block, limit - sent);
    ssize_t n;
    do {
      n = ::read(file, buf.get(), want);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && would_block(errno)) {
      co_await ReadyWait(*impl_, file, Interest::Read, "sock_sendfile", &site);
      continue;
    }
    if (n < 0) throw os_error(errno, "read");
    if (n == 0) break;
    co_await sock_sendall(fd, std::string_view(buf.get(), static_cast<std::size_t>(n)), site);
    sent += static_cast<std::size_t>(n);
  }
  co_return sent;
}

}  // namespace weave

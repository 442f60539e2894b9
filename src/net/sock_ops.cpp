// asyncio's loop.sock_* coroutines: each tries the syscall first and waits for readiness only
// when the kernel says EAGAIN, so a socket with data pending costs no wait at all.

#include <sys/socket.h>

#include <cerrno>

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

Coro<std::size_t> EventLoop::sock_recv_into(int fd, std::span<char> buffer) {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "recv");
    co_await ReadyWait(*impl_, fd, Interest::Read);
  }
}

Coro<std::string> EventLoop::sock_recv(int fd, std::size_t nbytes) {
  std::string data(nbytes, '\0');
  const std::size_t n = co_await sock_recv_into(fd, std::span<char>(data.data(), data.size()));
  data.resize(n);
  co_return data;
}

Coro<void> EventLoop::sock_sendall(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "send");
    co_await ReadyWait(*impl_, fd, Interest::Write);
  }
}

Coro<std::pair<Socket, SocketAddress>> EventLoop::sock_accept(int fd) {
  for (;;) {
    SocketAddress peer;
    *peer.size_ptr() = sizeof(sockaddr_storage);
    const int conn = ::accept4(fd, peer.data(), peer.size_ptr(), SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn >= 0) co_return std::pair<Socket, SocketAddress>(Socket::adopt(conn), peer);
    if (errno == EINTR) continue;
    if (!would_block(errno)) throw os_error(errno, "accept");
    co_await ReadyWait(*impl_, fd, Interest::Read);
  }
}

Coro<void> EventLoop::sock_connect(int fd, SocketAddress address) {
  int rc;
  do {
    rc = ::connect(fd, address.data(), address.size());
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) co_return;
  if (errno != EINPROGRESS && !would_block(errno)) throw os_error(errno, "connect");
  co_await ReadyWait(*impl_, fd, Interest::Write);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) throw os_error(err, "connect");
}

}  // namespace weave

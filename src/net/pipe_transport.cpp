// connect_read_pipe / connect_write_pipe, asyncio's _UnixReadPipeTransport and
// _UnixWritePipeTransport: the socket transport in its pipe modes (read/write instead of
// recv/send), the same one subprocess pipes and their streams (pipes.hpp) run on.

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "net/pipes.hpp"
#include "net/socket_transport.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"

namespace weave {

namespace {

Coro<Connection> connect_pipe(EventLoop& loop, const ProtocolFactory& factory, int fd,
                              detail::SocketTransport::Kind kind) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) throw os_error(errno, "fstat");
  if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode)) {
    throw ValueError("Pipe transport is for pipes/sockets only.");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw os_error(errno, "fcntl(O_NONBLOCK)");
  }
  std::shared_ptr<Protocol> protocol = factory();
  if (!protocol) throw ValueError("protocol factory returned null");
  // A write(2) to a pipe whose reader left must give EPIPE, not kill the process.
  if (kind == detail::SocketTransport::Kind::WritePipe) detail::ignore_sigpipe();
  auto transport =
      std::make_shared<detail::SocketTransport>(loop, Socket::adopt(fd), protocol, nullptr, kind);
  if (kind == detail::SocketTransport::Kind::WritePipe && !S_ISCHR(st.st_mode)) {
    transport->watch_reader_gone();
  }
  transport->start();
  // asyncio returns once connection_made has run: start() queued it just before this.
  Future<void> made = loop.create_future<void>();
  loop.call_soon([made]() mutable {
    if (!made.done()) made.set_result();
  });
  co_await made;
  co_return Connection{transport, protocol};
}

}  // namespace

Coro<Connection> EventLoop::connect_read_pipe(ProtocolFactory factory, int fd) {
  co_return co_await connect_pipe(*this, factory, fd, detail::SocketTransport::Kind::ReadPipe);
}

Coro<Connection> EventLoop::connect_write_pipe(ProtocolFactory factory, int fd) {
  co_return co_await connect_pipe(*this, factory, fd, detail::SocketTransport::Kind::WritePipe);
}

}  // namespace weave

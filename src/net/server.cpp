// Servers, as asyncio's base_events.Server and selector_events._accept_connection: each
// listening socket is watched for readability; a ready event accepts up to `backlog` connections.
// On io_uring the kernel accepts (multishot accept) and hands over the new fds. When the process
// runs out of fds (EMFILE and friends) the server reports it, stops accepting, and tries again
// after a back-off instead of spinning on a socket that stays ready.

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/loop_impl.hpp"
#include "net/server_state.hpp"
#include "net/socket_transport.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::detail {

namespace {
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

}  // namespace

ServerState::ServerState(EventLoop& l, ProtocolFactory f, std::vector<Socket> s, int b)
    : loop(l), factory(std::move(f)), sockets(std::move(s)), backlog(b) {
  loop.impl().servers.insert(this);
}

ServerState::~ServerState() {
  if (detached) return;
  stop_serving();
  loop.impl().servers.erase(this);
}

void ServerState::detach_from_loop() noexcept {
  stop_serving();
  loop.impl().servers.erase(this);
  detached = true;
  closed = true;
  sockets.clear();
  clients.clear();
  closed_waiters.clear();
  serving_forever.reset();
  auto keep = std::move(self);  // may be the last reference
}

void ServerState::start_serving() {
  if (serving || closed || detached) return;
  self = shared_from_this();
  serving = true;
  for (const Socket& s : sockets) {
    auto acceptor = std::make_unique<Acceptor>();
    acceptor->server = this;
    acceptor->fd = s.fd();
    io::Backend& backend = *loop.impl().backend_;
    acceptor->native = backend.start_accepting(s.fd(), acceptor.get());
    if (!acceptor->native) backend.watch(s.fd(), io::Interest::Read, acceptor.get());
    acceptors.push_back(std::move(acceptor));
  }
}

void ServerState::stop_serving() noexcept {
  if (detached) return;
  if (backoff) backoff->cancel();
  backoff.reset();
  LoopImpl& impl = loop.impl();
  for (auto& a : acceptors) {
    if (!impl.backend_) continue;
    if (a->native) {
      impl.backend_->stop_accepting(a->fd);
    } else {
      impl.backend_->unwatch(a->fd, io::Interest::Read);
    }
  }
  acceptors.clear();
  serving = false;
}

void ServerState::accept_ready(int fd) noexcept {
  for (int i = 0; i < backlog && !closed && serving; ++i) {
    const int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn >= 0) {
      connection_accepted(conn);
      continue;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
    if (err == ECONNABORTED || err == EPROTO) continue;  // the peer gave up: not our error
    accept_failed(err);
    return;
  }
}

void ServerState::accept_failed(int err) noexcept {
  loop.call_exception_handler({"socket.accept() out of system resource",
                               std::make_exception_ptr(os_error(err, "accept")), std::nullopt});
  // Stop accepting for a while: a listening socket with a pending connection stays ready, and
  // accepting again at once would spin while the process is out of fds (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM: the errors asyncio backs off on; the rare others are treated alike).
  auto keep = self;
  stop_serving();
  backoff = loop.call_later(kAcceptRetryDelay, [this, keep] {
    backoff.reset();
    if (!closed) start_serving();
  });
}

void ServerState::connection_accepted(int conn) noexcept {
  Socket sock = Socket::adopt(conn);
  std::shared_ptr<Protocol> protocol;
  try {
    protocol = factory();
    if (!protocol) throw ValueError("protocol factory returned null");
  } catch (...) {
    loop.call_exception_handler({"protocol factory failed for an accepted connection",
                                 std::current_exception(), std::nullopt});
    return;  // `sock` closes the connection
  }
  try {
    if (wrap) protocol = wrap(std::move(protocol));
    auto transport = std::make_shared<SocketTransport>(loop, std::move(sock), std::move(protocol),
                                                       shared_from_this());
    transport->start();
  } catch (...) {
    loop.call_exception_handler(
        {"could not start a transport", std::current_exception(), std::nullopt});
  }
}

void ServerState::close() {
  if (closed) {
    // Closed with the loop, which leaves the file as asyncio's does: close() still removes it.
    remove_socket_file();
    return;
  }
  closed = true;
  stop_serving();
  sockets.clear();  // closes the listening fds
  remove_socket_file();
  if (serving_forever && !serving_forever->done()) serving_forever->cancel();
  serving_forever.reset();
  maybe_wake_closed();
}

void ServerState::remove_socket_file() noexcept {
  if (!socket_file) return;
  // Once only: after the unlink a new file at the path may well be given the same inode.
  const SocketFile file = std::move(*socket_file);
  socket_file.reset();
  // Another server may have replaced the file since (removing ours first): its file is not ours
  // to remove. Failures change nothing for the caller, as in asyncio, which only logs them.
  struct stat st {};
  if (::stat(file.path.c_str(), &st) == 0 && st.st_dev == file.dev && st.st_ino == file.ino) {
    ::unlink(file.path.c_str());
  }
}

void ServerState::detach(SocketTransport* t) noexcept {
  clients.erase(t);
  maybe_wake_closed();
}

void ServerState::maybe_wake_closed() noexcept {
  if (!closed || !clients.empty()) return;
  for (Future<void>& f : closed_waiters) {
    if (!f.done()) f.set_result();
  }
  closed_waiters.clear();
  auto keep = std::move(self);  // the last reference may be this one
}

}  // namespace weave::detail

namespace weave {

const std::vector<Socket>& Server::sockets() const {
  static const std::vector<Socket> none;
  return state_ ? state_->sockets : none;
}

bool Server::is_serving() const noexcept {
  return state_ && state_->serving && !state_->closed;
}

std::suspend_never Server::start_serving() {
  if (state_) state_->start_serving();
  return {};
}

void Server::close() {
  if (state_) state_->close();
}

void Server::close_clients() {
  if (!state_) return;
  std::vector<detail::SocketTransport*> clients(state_->clients.begin(), state_->clients.end());
  for (auto* t : clients) t->close();
}

void Server::abort_clients() {
  if (!state_) return;
  std::vector<detail::SocketTransport*> clients(state_->clients.begin(), state_->clients.end());
  for (auto* t : clients) t->abort();
}

Coro<void> Server::wait_closed() {
  auto state = state_;  // the handle may go while we wait
  if (!state || (state->closed && state->clients.empty())) co_return;
  Future<void> done = state->loop.create_future<void>();
  state->closed_waiters.push_back(done);
  co_await done;
}

Coro<void> Server::serve_forever() {
  auto state = state_;
  if (!state) throw RuntimeError("serve_forever on an empty Server");
  if (state->serving_forever)
    throw RuntimeError("server is already being awaited on serve_forever()");
  if (state->closed) throw RuntimeError("server is closed");
  state->start_serving();
  Future<void> forever = state->loop.create_future<void>();
  state->serving_forever = forever;
  std::exception_ptr cancelled;
  try {
    co_await forever;
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  state->serving_forever.reset();
  if (cancelled) {
    state->close();
    co_await Server(state).wait_closed();
    std::rethrow_exception(cancelled);
  }
}

}  // namespace weave

#include "net/socket_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include "core/loop_impl.hpp"
#include "net/datagram_transport.hpp"
#include "net/server_state.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

namespace {
constexpr std::size_t kMaxRead = std::size_t{256} * 1024;  // asyncio's max_size per recv

/// One receive buffer per loop thread: data_received gets a view that is valid only during the
/// call, so idle connections hold no read buffer at all.
char* read_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kMaxRead]);
  return buffer.get();
}

ssize_t receive(int fd, char* data, std::size_t size, bool socket) noexcept {
  return socket ? ::recv(fd, data, size, 0) : ::read(fd, data, size);
}

ssize_t transmit(int fd, const char* data, std::size_t size, bool socket) noexcept {
  return socket ? ::send(fd, data, size, MSG_NOSIGNAL) : ::write(fd, data, size);
}

bool would_block(int err) noexcept {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/// Resets and broken pipes are a peer's doing, not a bug: asyncio logs them only in debug mode.
bool is_connection_error(const std::exception_ptr& exc) {
  try {
    std::rethrow_exception(exc);
  } catch (const std::system_error& e) {
    const int err = e.code().value();
    return err == ECONNRESET || err == EPIPE || err == ECONNABORTED || err == ETIMEDOUT;
  } catch (...) {
    return false;
  }
}
}  // namespace

void set_nodelay(int fd) noexcept {
  const int on = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

SocketTransport::SocketTransport(EventLoop& loop, Socket sock, std::shared_ptr<Protocol> protocol,
                                 std::shared_ptr<ServerState> server, Kind kind)
    : loop_(loop),
      impl_(loop.impl()),
      sock_(std::move(sock)),
      protocol_(std::move(protocol)),
      server_(std::move(server)),
      kind_(kind) {
  read_side_.owner = this;
  write_side_.owner = this;
  stream_side_.t = this;
}

SocketTransport::~SocketTransport() {
  if (detached_) return;
  unwatch_reads();
  unwatch_writes();
  forget_stream();
  impl_.transports.erase(this);
}

void SocketTransport::detach_from_loop() noexcept {
  if (detached_) return;
  unwatch_reads();
  unwatch_writes();
  forget_stream();
  impl_.transports.erase(this);
  detached_ = true;
  closing_ = lost_ = true;
  wbuf_.clear();
  woff_ = 0;
  sock_.close();
  if (server_) {
    server_->detach(this);
    server_.reset();
  }
  auto keep = std::move(self_);  // may be the last reference
}

void SocketTransport::start() {
  self_ = shared();
  started_ = true;
  impl_.transports.insert(this);
  if (server_) server_->attach(this);
  loop_.call_soon([self = self_] {
    try {
      self->protocol_->connection_made(*self);
    } catch (...) {
      self->fatal_error(std::current_exception(), "protocol.connection_made() failed");
      return;
    }
  });
  if (kind_ != Kind::WritePipe || watch_reader_gone_) {
    loop_.call_soon([self = self_] {
      if (!self->closing_ && !self->paused_) self->watch_reads();
    });
  }
}

// ---- reading
// -------------------------------------------------------------------------------------

void SocketTransport::watch_reads() {
  if (reads_watched_ || !impl_.backend_) return;
  if (!attached_) {
    attached_ = true;
    native_ = kind_ == Kind::Socket && impl_.backend_->attach_stream(sock_.fd(), &stream_side_);
  }
  if (native_) {
    impl_.backend_->set_receiving(sock_.fd(), true);
  } else {
    impl_.backend_->watch(sock_.fd(), io::Interest::Read, &read_side_);
  }
  reads_watched_ = true;
}

void SocketTransport::unwatch_reads() noexcept {
  if (!reads_watched_) return;
  reads_watched_ = false;
  if (!impl_.backend_) return;
  if (native_) {
    impl_.backend_->set_receiving(sock_.fd(), false);
  } else {
    impl_.backend_->unwatch(sock_.fd(), io::Interest::Read);
  }
}

void SocketTransport::forget_stream() noexcept {
  if (native_ && impl_.backend_) impl_.backend_->detach_stream(sock_.fd());
  native_ = false;
}

void SocketTransport::unwatch_writes() noexcept {
  if (!writes_watched_) return;
  writes_watched_ = false;
  if (impl_.backend_) impl_.backend_->unwatch(sock_.fd(), io::Interest::Write);
}

void SocketTransport::on_readable() noexcept {
  if (closing_ || paused_) return;
  if (kind_ == Kind::WritePipe) {
    // The read end closed (asyncio's _UnixWritePipeTransport._read_ready).
    unwatch_reads();
    if (get_write_buffer_size() > 0) {
      fatal_error(std::make_exception_ptr(os_error(EPIPE, "write")),
                  "Fatal write error on pipe transport");
    } else {
      close();
    }
    return;
  }
  char* buffer = read_buffer();
  const ssize_t n = receive(sock_.fd(), buffer, kMaxRead, kind_ == Kind::Socket);
  if (n < 0) {
    if (would_block(errno)) return;
    fatal_error(std::make_exception_ptr(os_error(errno, "recv")),
                "Fatal read error on socket transport");
    return;
  }
  if (n == 0) {
    on_eof();
    return;
  }
  deliver(std::string_view(buffer, static_cast<std::size_t>(n)));
}

void SocketTransport::deliver(std::string_view data) noexcept {
  // The protocol may close or abort us, or drop its last reference: self_ keeps us alive.
  try {
    protocol_->data_received(data);
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
  }
}

void SocketTransport::on_received(std::string_view data) noexcept {
  if (closing_) return;
  if (paused_) {
    backlog_.append(data);  // received before the pause took effect: kept for resume
    return;
  }
  deliver(data);
}

void SocketTransport::on_read_end(int error) noexcept {
  reads_watched_ = false;
  if (closing_) return;
  if (paused_) {
    pending_end_ = error;
    return;
  }
  if (error == 0) {
    on_eof();
  } else {
    fatal_error(std::make_exception_ptr(os_error(error, "recv")),
                "Fatal read error on socket transport");
  }
}

void SocketTransport::flush_backlog() noexcept {
  if (closing_ || paused_) return;
  std::string chunk;
  chunk.swap(backlog_);
  if (!chunk.empty()) deliver(chunk);
  if (closing_ || paused_) return;
  if (pending_end_) {
    const int error = *pending_end_;
    pending_end_.reset();
    on_read_end(error);
    return;
  }
  watch_reads();
}

void SocketTransport::on_eof() noexcept {
  unwatch_reads();
  bool keep_open = false;
  try {
    keep_open = protocol_->eof_received();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  // A pipe has no half-close: its transport ends at EOF, as asyncio's read pipe transport does.
  if (!keep_open || kind_ == Kind::ReadPipe) close();
}

void SocketTransport::pause_reading() {
  if (closing_ || paused_) return;
  paused_ = true;
  unwatch_reads();
}

void SocketTransport::resume_reading() {
  if (closing_ || !paused_) return;
  paused_ = false;
  if (!started_) return;
  if (backlog_.empty() && !pending_end_) {
    watch_reads();
    return;
  }
  // Like asyncio, data_received never runs inside resume_reading().
  loop_.call_soon([self = shared()] { self->flush_backlog(); });
}

// ---- writing
// -------------------------------------------------------------------------------------

void SocketTransport::write(std::string_view data) {
  if (kind_ == Kind::ReadPipe) throw RuntimeError("write on the read end of a pipe");
  if (eof_requested_) throw RuntimeError("Cannot call write() after write_eof()");
  if (sendfile_active_) throw RuntimeError("unable to write; sendfile is in progress");
  // While a close waits for the buffer to drain, more data joins it (asyncio's _conn_lost is
  // still 0 then); once the connection is lost, writes are dropped.
  if (data.empty() || lost_) return;
  if (get_write_buffer_size() == 0) {
    const ssize_t n = transmit(sock_.fd(), data.data(), data.size(), kind_ == Kind::Socket);
    if (n < 0 && !would_block(errno)) {
      fatal_error(std::make_exception_ptr(os_error(errno, "send")),
                  "Fatal write error on socket transport");
      return;
    }
    if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
    if (data.empty()) return;
    wbuf_.clear();
    woff_ = 0;
    impl_.backend_->watch(sock_.fd(), io::Interest::Write, &write_side_);
    writes_watched_ = true;
  } else if (woff_ > wbuf_.size() / 2) {
    wbuf_.erase(0, woff_);  // keep the buffer from growing at the front
    woff_ = 0;
  }
  wbuf_.append(data);
  maybe_pause_protocol();
}

void SocketTransport::on_writable() noexcept {
  const std::size_t pending = get_write_buffer_size();
  if (pending > 0) {
    const ssize_t n = transmit(sock_.fd(), wbuf_.data() + woff_, pending, kind_ == Kind::Socket);
    if (n < 0) {
      if (would_block(errno)) return;
      fatal_error(std::make_exception_ptr(os_error(errno, "send")),
                  "Fatal write error on socket transport");
      return;
    }
    woff_ += static_cast<std::size_t>(n);
    maybe_resume_protocol();
    if (get_write_buffer_size() > 0) return;
  }
  wbuf_.clear();
  woff_ = 0;
  unwatch_writes();
  if (empty_waiter_) {
    if (!empty_waiter_->done()) empty_waiter_->set_result();
    empty_waiter_.reset();
  }
  if (closing_) {
    if (!sendfile_active_) call_connection_lost(nullptr);  // else once sendfile has ended
  } else if (eof_requested_) {
    end_writing();  // the buffer only drains once after write_eof: write() refuses more
  }
}

void SocketTransport::write_eof() {
  if (kind_ == Kind::ReadPipe) throw RuntimeError("write_eof on the read end of a pipe");
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  if (get_write_buffer_size() == 0) end_writing();
}

void SocketTransport::end_writing() noexcept {
  if (kind_ == Kind::WritePipe) {
    close();  // a pipe has no half-close: its reader sees EOF when the write end closes
  } else {
    ::shutdown(sock_.fd(), SHUT_WR);
  }
}

void SocketTransport::set_write_buffer_limits(std::optional<std::size_t> high,
                                              std::optional<std::size_t> low) {
  flow_.set_limits(high, low);
  maybe_pause_protocol();
}

void SocketTransport::maybe_pause_protocol() noexcept {
  flow_.maybe_pause(get_write_buffer_size(), *protocol_, loop_);
}

void SocketTransport::maybe_resume_protocol() noexcept {
  flow_.maybe_resume(get_write_buffer_size(), *protocol_, loop_);
}

// ---- sendfile
// ------------------------------------------------------------------------------------

Coro<std::size_t> SocketTransport::sendfile(int file, std::uint64_t offset,
                                            std::optional<std::size_t> count) {
  if (closing_) throw RuntimeError("Transport is closing");
  if (sendfile_active_) throw RuntimeError("sendfile is already in progress");
  auto self = shared();  // the caller's handle may go while we wait
  const bool resume = is_reading();
  pause_reading();
  sendfile_active_ = true;
  std::exception_ptr failure;
  std::size_t sent = 0;
  bool cancelled = false;
  try {
    if (get_write_buffer_size() > 0) {
      Future<void> empty = loop_.create_future<void>();
      empty_waiter_ = empty;
      co_await empty;
    }
    if (lost_) throw os_error(EPIPE, "sendfile: the connection is lost");
    Task<std::size_t> task =
        loop_.create_task(loop_.sock_sendfile(sock_.fd(), file, offset, count, false));
    sendfile_task_ = task;
    sent = co_await task;
  } catch (const CancelledError&) {
    // abort() cancelled the inner task; a cancellation of the caller cancels it too
    failure = std::current_exception();
    cancelled = true;
  } catch (...) {
    failure = std::current_exception();
  }
  sendfile_task_.reset();
  empty_waiter_.reset();
  sendfile_active_ = false;
  const std::optional<TaskRef> me = current_task();
  if (cancelled && lost_ && me && me->cancelling() == 0) {
    failure = std::make_exception_ptr(os_error(EPIPE, "sendfile: the connection is lost"));
  }
  if (closing_ && !lost_ && get_write_buffer_size() == 0) {
    lost_ = true;  // a close() during the sendfile: its connection_lost now
    loop_.call_soon([self] { self->call_connection_lost(nullptr); });
  } else if (resume && !closing_) {
    resume_reading();
  }
  if (failure) std::rethrow_exception(failure);
  co_return sent;
}

// ---- closing
// -------------------------------------------------------------------------------------

void SocketTransport::close() {
  if (closing_) return;
  closing_ = true;
  unwatch_reads();
  if (get_write_buffer_size() == 0 && !sendfile_active_) {
    lost_ = true;
    auto self = shared();
    loop_.call_soon([self] { self->call_connection_lost(nullptr); });
  }
}

void SocketTransport::abort() {
  force_close(nullptr);
}

void SocketTransport::fatal_error(const std::exception_ptr& exc, const char* message) noexcept {
  if (!is_connection_error(exc)) loop_.call_exception_handler({message, exc, std::nullopt});
  force_close(exc);
}

void SocketTransport::force_close(const std::exception_ptr& exc) noexcept {
  if (lost_) return;
  wbuf_.clear();
  woff_ = 0;
  unwatch_writes();
  if (empty_waiter_) {
    if (!empty_waiter_->done()) {
      empty_waiter_->set_exception(
          std::make_exception_ptr(os_error(EPIPE, "sendfile: the connection is lost")));
    }
    empty_waiter_.reset();
  }
  // Withdraws sendfile's watch on the fd now, before connection_lost closes it.
  if (sendfile_task_ && !sendfile_task_->done()) sendfile_task_->cancel();
  closing_ = true;
  unwatch_reads();
  lost_ = true;
  auto self = shared();
  loop_.call_soon([self, exc] { self->call_connection_lost(exc); });
}

void SocketTransport::call_connection_lost(std::exception_ptr exc) noexcept {
  lost_ = true;
  try {
    protocol_->connection_lost(std::move(exc));
  } catch (...) {
    loop_.call_exception_handler(
        {"protocol.connection_lost() failed", std::current_exception(), std::nullopt});
  }
  unwatch_reads();
  unwatch_writes();
  forget_stream();
  impl_.transports.erase(this);
  sock_.close();
  if (server_) {
    server_->detach(this);
    server_.reset();
  }
  auto keep = std::move(self_);  // may be the last reference: this dies with `keep`
}

// ---- the rest
// ------------------------------------------------------------------------------------

ExtraInfo SocketTransport::get_extra_info(std::string_view name) const {
  if (name == "peername") return names_.peername(sock_);
  if (name == "sockname") return names_.sockname(sock_);
  if (name == "socket") return ExtraInfo(sock_.fd());
  if (name == "pipe" && kind_ != Kind::Socket) return ExtraInfo(sock_.fd());
  return {};
}

void SocketTransport::set_protocol(std::shared_ptr<Protocol> protocol) {
  if (!protocol) throw ValueError("set_protocol: null protocol");
  protocol_ = std::move(protocol);
}

void LoopImpl::detach_net() noexcept {
  const std::vector<SocketTransport*> open(transports.begin(), transports.end());
  for (SocketTransport* t : open) t->detach_from_loop();
  const std::vector<DatagramSocketTransport*> endpoints(datagrams.begin(), datagrams.end());
  for (DatagramSocketTransport* t : endpoints) t->detach_from_loop();
  const std::vector<ServerState*> listening(servers.begin(), servers.end());
  for (ServerState* s : listening) s->detach_from_loop();
}

}  // namespace weave::detail

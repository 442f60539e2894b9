#pragma once
// The stream transport over a connected socket, as asyncio's _SelectorSocketTransport: reads
// are driven by readiness (one recv per ready event into a loop-wide buffer, so an idle
// connection holds no read buffer); writes go out at once while the buffer is empty and are
// buffered, with the write watch armed, only for what the kernel did not take.
//
// Lifetime: the transport keeps itself alive (self_) from start() until connection_lost has
// run; handles (StreamWriter, the user's shared_ptr) may keep the object, closed, for longer.

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "io/backend.hpp"
#include "net/socket_names.hpp"
#include "net/write_flow.hpp"
#include "weave/future.hpp"
#include "weave/task.hpp"
#include "weave/transports.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

class LoopImpl;
struct ServerState;

/// Turns Nagle's algorithm off, as asyncio does for every TCP transport: with it on, the tail of
/// a reply waits for the peer's delayed ACK (up to 40 ms) whenever a write is split.
void set_nodelay(int fd) noexcept;

class SocketTransport final : public Transport {
 public:
  /// What the fd is: a connected socket, or one end of a pipe (read/write instead of
  /// recv/send; a write pipe is never read, and its write_eof closes it).
  enum class Kind : unsigned char { Socket, ReadPipe, WritePipe };

  SocketTransport(EventLoop& loop, Socket sock, std::shared_ptr<Protocol> protocol,
                  std::shared_ptr<ServerState> server, Kind kind = Kind::Socket);
  ~SocketTransport() override;

  /// Schedules connection_made, then starts reading (both with call_soon, as asyncio does).
  void start();
  /// A write pipe watches its fd for readability, which means that the reader went away (the
  /// kernel reports an error condition): the transport then closes, with EPIPE when bytes are
  /// still buffered, as asyncio's write pipe transport does. Before start().
  void watch_reader_gone() noexcept { watch_reader_gone_ = true; }

  void write(std::string_view data) override;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return kind_ != Kind::ReadPipe; }
  void close() override;
  void abort() override;
  bool is_closing() const noexcept override { return closing_; }
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return !closing_ && !paused_; }
  std::size_t get_write_buffer_size() const noexcept override { return wbuf_.size() - woff_; }
  void set_write_buffer_limits(std::optional<std::size_t> high,
                               std::optional<std::size_t> low) override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
    return flow_.limits();
  }
  ExtraInfo get_extra_info(std::string_view name) const override;
  Protocol& get_protocol() const noexcept override { return *protocol_; }
  void set_protocol(std::shared_ptr<Protocol> protocol) override;

  int fd() const noexcept { return sock_.fd(); }
  /// loop.sendfile's zero-copy path (asyncio's _sendfile_native): reading pauses and write()
  /// raises RuntimeError meanwhile; what is buffered is flushed first, then sock_sendfile
  /// without fallback sends the file. A close() waits for the end; abort() or a lost connection
  /// ends it with std::system_error(EPIPE). Errors: SendfileNotAvailableError (nothing was
  /// sent: the caller may fall back); RuntimeError when another sendfile is running or the
  /// transport is closing; sock_sendfile's errors.
  Coro<std::size_t> sendfile(int file, std::uint64_t offset, std::optional<std::size_t> count);
  bool is_socket() const noexcept { return kind_ == Kind::Socket; }
  /// The protocol was told pause_writing() and not yet resume_writing().
  bool protocol_paused() const noexcept { return flow_.paused(); }
  const std::shared_ptr<Protocol>& protocol_ptr() const noexcept { return protocol_; }
  /// The loop is closing: stop watching, close the socket, and never touch the loop again.
  void detach_from_loop() noexcept;

 private:
  /// The backend's native receiving (io_uring), when it has it.
  struct StreamSide final : io::StreamListener {
    SocketTransport* t;
    void on_data(std::string_view data) noexcept override { t->on_received(data); }
    void on_read_end(int error) noexcept override { t->on_read_end(error); }
  };

  void on_readable() noexcept;
  void on_received(std::string_view data) noexcept;
  void on_read_end(int error) noexcept;
  void deliver(std::string_view data) noexcept;
  /// After resume_reading: what arrived while paused, then the end if it came too.
  void flush_backlog() noexcept;
  void forget_stream() noexcept;
  void on_writable() noexcept;
  using ReadSide = io::ReadyCall<SocketTransport, &SocketTransport::on_readable>;
  using WriteSide = io::ReadyCall<SocketTransport, &SocketTransport::on_writable>;
  void on_eof() noexcept;
  /// write_eof's effect once the buffer is empty.
  void end_writing() noexcept;
  void watch_reads();
  void unwatch_reads() noexcept;
  void unwatch_writes() noexcept;
  /// asyncio's _maybe_pause_protocol / _maybe_resume_protocol.
  void maybe_pause_protocol() noexcept;
  void maybe_resume_protocol() noexcept;
  /// A failed syscall or protocol callback: report (unless a plain reset) and close at once.
  void fatal_error(const std::exception_ptr& exc, const char* message) noexcept;
  void force_close(const std::exception_ptr& exc) noexcept;
  void call_connection_lost(std::exception_ptr exc) noexcept;
  std::shared_ptr<SocketTransport> shared() {
    return std::static_pointer_cast<SocketTransport>(shared_from_this());
  }

  EventLoop& loop_;
  LoopImpl& impl_;
  Socket sock_;
  std::shared_ptr<Protocol> protocol_;
  std::shared_ptr<ServerState> server_;
  std::shared_ptr<SocketTransport> self_;
  ReadSide read_side_;
  WriteSide write_side_;
  StreamSide stream_side_;
  std::string backlog_;             ///< received natively while paused
  std::optional<int> pending_end_;  ///< the read side ended while paused
  SocketNames names_;
  std::string wbuf_;  ///< bytes not yet sent start at woff_
  std::size_t woff_ = 0;
  WriteFlow flow_;
  Kind kind_;
  bool started_ = false;
  bool closing_ = false;
  bool paused_ = false;  ///< pause_reading()
  bool reads_watched_ = false;
  bool writes_watched_ = false;
  bool eof_requested_ = false;  ///< write_eof() waits for the buffer
  bool lost_ = false;           ///< connection_lost scheduled
  bool detached_ = false;       ///< the loop closed under us
  bool attached_ = false;       ///< attach_stream was asked
  bool native_ = false;         ///< the backend receives for us
  bool sendfile_active_ = false;
  bool watch_reader_gone_ = false;  ///< a write pipe that notices its reader leaving
  /// sendfile waits for the buffer to drain; set once it has, failed when the connection goes.
  std::optional<Future<void>> empty_waiter_;
  /// sendfile's sock_sendfile, cancelled by abort() so that the fd is unwatched before it closes.
  std::optional<Task<std::size_t>> sendfile_task_;
};

}  // namespace weave::detail

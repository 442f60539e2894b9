#pragma once
// The one door from the loop into I/O. A backend blocks the loop thread until I/O completes, a
// wakeup() arrives from another thread, or the timeout passes; the loop never learns whether
// epoll or io_uring runs underneath. make_backend() probes the kernel and honours
// WEAVE_BACKEND=epoll|uring.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace weave::io {

/// Which readiness of a file descriptor is awaited.
enum class Interest : unsigned char { Read = 0, Write = 1 };

/// Told, on the loop thread and from inside Backend::poll(), that the fd it watches is ready
/// (or failed: an error or hang-up counts as ready, so that the next syscall reports it).
class ReadyListener {
 public:
  virtual void on_ready() noexcept = 0;

 protected:
  ~ReadyListener() = default;
};

/// A ReadyListener that calls a member of its owner, so that one object can watch both
/// directions of its fd with a listener for each.
template <class T, void (T::*Method)() noexcept>
struct ReadyCall final : ReadyListener {
  T* owner = nullptr;
  void on_ready() noexcept override { (owner->*Method)(); }
};

/// Told what a stream socket received, when the backend receives natively (io_uring's multishot
/// recv into provided buffers). Called on the loop thread from inside Backend::poll().
class StreamListener {
 public:
  /// A chunk, valid only during the call.
  virtual void on_data(std::string_view data) noexcept = 0;
  /// The read side ended: 0 at EOF, else the errno. Nothing more is received.
  virtual void on_read_end(int error) noexcept = 0;

 protected:
  ~StreamListener() = default;
};

/// Told of connections accepted natively (io_uring's multishot accept).
class AcceptListener {
 public:
  /// A new connection, non-blocking and close-on-exec, now owned by the listener.
  virtual void on_accepted(int fd) noexcept = 0;
  /// Accepting stopped on an error (EMFILE, ...); start_accepting again to go on.
  virtual void on_accept_error(int error) noexcept = 0;

 protected:
  ~AcceptListener() = default;
};

/// One file operation for a backend that does file I/O natively (io_uring).
struct FileOp {
  enum class Kind : unsigned char { Open, Read, Write, Fsync, Close };
  Kind kind = Kind::Read;
  int fd = -1;
  const char* path = nullptr;  ///< Open
  int flags = 0;               ///< Open
  unsigned mode = 0;           ///< Open
  void* data = nullptr;        ///< Read, Write
  unsigned size = 0;           ///< Read, Write
  std::int64_t offset = -1;    ///< Read, Write; -1: at the file position, which moves
};

/// Told the result of a FileOp: >= 0 as the syscall returns it, or -errno.
class OpListener {
 public:
  virtual void on_complete(int result) noexcept = 0;

 protected:
  ~OpListener() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// "epoll" or "io_uring".
  virtual const char* name() const noexcept = 0;
  /// Waits at most `timeout` (nullopt: without limit; zero: does not block).
  virtual void poll(std::optional<std::chrono::nanoseconds> timeout) = 0;
  /// Makes a poll in progress, or the next one, return at once. Safe from any thread.
  virtual void wakeup() noexcept = 0;

  /// Level-triggered interest in one direction of `fd` until unwatch(): while the fd is ready,
  /// every poll() calls `listener->on_ready()` once. One listener per (fd, interest); watching
  /// again replaces it. Errors: std::system_error when the kernel refuses the fd.
  virtual void watch(int fd, Interest interest, ReadyListener* listener) = 0;
  /// Ends the interest; the listener is never called again, and nothing stays armed on the fd.
  virtual void unwatch(int fd, Interest interest) noexcept = 0;
  /// True while some listener watches (fd, interest).
  virtual bool watched(int fd, Interest interest) const noexcept = 0;

  // Native receiving on stream sockets. A backend without it returns false from
  // attach_stream, and the caller reads on readiness (watch) instead.

  /// Makes `listener` the receiver of socket `fd` (a new stream: chunks of an earlier stream on
  /// the same fd number are never delivered to it). False: not supported; use watch().
  virtual bool attach_stream(int fd, StreamListener* listener) {
    (void)fd;
    (void)listener;
    return false;
  }
  /// Starts or stops receiving. After a stop, chunks the kernel received before the stop took
  /// effect are still delivered: the listener keeps them for later.
  virtual void set_receiving(int fd, bool on) noexcept {
    (void)fd;
    (void)on;
  }
  /// The stream is over (its fd is about to close): nothing more is delivered.
  virtual void detach_stream(int fd) noexcept { (void)fd; }

  /// Accepts on listening socket `fd` natively until stop_accepting or an error. False: not
  /// supported; accept on readiness (watch) instead.
  virtual bool start_accepting(int fd, AcceptListener* listener) {
    (void)fd;
    (void)listener;
    return false;
  }
  /// Connections the kernel accepts after this are closed, never delivered. When it returns the
  /// backend holds nothing of the socket: closing `fd` closes the socket, and a listening socket
  /// stops listening (its queued connections are reset) there and then.
  virtual void stop_accepting(int fd) noexcept { (void)fd; }

  /// True when submit_file_op works.
  virtual bool native_files() const noexcept { return false; }
  /// Starts `op`; `listener` (and the op's memory) must stay valid until on_complete. False:
  /// not supported; run the syscall on a thread instead.
  virtual bool submit_file_op(const FileOp& op, OpListener* listener) {
    (void)op;
    (void)listener;
    return false;
  }
  /// Asks the kernel to cancel; on_complete still comes (with -ECANCELED, or the result if the
  /// operation finished first).
  virtual void cancel_file_op(OpListener* listener) noexcept { (void)listener; }
};

/// The backend WEAVE_BACKEND names, else io_uring when the kernel allows it, else epoll.
std::unique_ptr<Backend> make_backend();

std::unique_ptr<Backend> make_epoll_backend();
/// nullptr when io_uring is not built in or the kernel refuses it.
std::unique_ptr<Backend> make_uring_backend();

}  // namespace weave::io

#pragma once
// The one door from the loop into I/O. A backend blocks the loop thread until I/O completes, a
// wakeup() arrives from another thread, or the timeout passes; the loop never learns whether
// epoll or io_uring runs underneath. make_backend() probes the kernel and honours
// WEAVE_BACKEND=epoll|uring.

#include <chrono>
#include <memory>
#include <optional>

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
};

/// The backend WEAVE_BACKEND names, else io_uring when the kernel allows it, else epoll.
std::unique_ptr<Backend> make_backend();

std::unique_ptr<Backend> make_epoll_backend();
/// nullptr when io_uring is not built in or the kernel refuses it.
std::unique_ptr<Backend> make_uring_backend();

}  // namespace weave::io

#pragma once
// The one door from the loop into I/O. A backend blocks the loop thread until I/O completes, a
// wakeup() arrives from another thread, or the timeout passes; the loop never learns whether
// epoll or io_uring runs underneath. make_backend() probes the kernel and honours
// WEAVE_BACKEND=epoll|uring.

#include <chrono>
#include <memory>
#include <optional>

namespace weave::io {

class Backend {
 public:
  virtual ~Backend() = default;
  /// "epoll" or "io_uring".
  virtual const char* name() const noexcept = 0;
  /// Waits at most `timeout` (nullopt: without limit; zero: does not block).
  virtual void poll(std::optional<std::chrono::nanoseconds> timeout) = 0;
  /// Makes a poll in progress, or the next one, return at once. Safe from any thread.
  virtual void wakeup() noexcept = 0;
};

/// The backend WEAVE_BACKEND names, else io_uring when the kernel allows it, else epoll.
std::unique_ptr<Backend> make_backend();

std::unique_ptr<Backend> make_epoll_backend();
/// nullptr when io_uring is not built in or the kernel refuses it.
std::unique_ptr<Backend> make_uring_backend();

}  // namespace weave::io

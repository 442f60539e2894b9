#pragma once
// The loop's thread-safe entry (asyncio's call_soon_threadsafe and its self-pipe): the one place
// other threads hand work to a loop.
//
// It lives in a shared_ptr apart from the loop so that a thread may keep a reference (a LoopLink)
// after the loop is closed or destroyed: a completion that arrives from an executor thread after
// its loop went away finds the entry closed and drops its callback instead of touching freed
// memory. Everything here is guarded by `mutex_`, except `pending_`, the "something was posted"
// flag the loop reads once per iteration without locking.
//
// Wakeup: the first post after a drain sets `pending_` and wakes the backend (an eventfd write
// that makes a blocked epoll_wait / io_uring wait return at once); later posts see the flag and
// skip the syscall. The loop clears the flag before it takes the batch, so a post racing with the
// drain either lands in this batch or sets the flag again and wakes the next poll.
// The wakeup is sent under the mutex because close() releases the backend under it too.

#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include "io/backend.hpp"
#include "weave/detail/small_function.hpp"

namespace weave::detail {

class EntryQueue {
 public:
  explicit EntryQueue(io::Backend* backend) noexcept : backend_(backend) {}
  EntryQueue(const EntryQueue&) = delete;
  EntryQueue& operator=(const EntryQueue&) = delete;

  /// Queues `fn` for the loop thread and wakes it; false when the loop is closed (`fn` is then
  /// destroyed by the caller, in the caller's thread).
  bool post(SmallFunction& fn) {
    std::lock_guard lock(mutex_);
    if (backend_ == nullptr) return false;
    items_.push_back(std::move(fn));
    if (!pending_.exchange(true, std::memory_order_acq_rel)) backend_->wakeup();
    return true;
  }

  /// Loop thread: whether a post arrived since the last take().
  bool pending() const noexcept { return pending_.load(std::memory_order_acquire); }

  /// Loop thread: moves every queued callback to `out` (which must be empty), in post order.
  void take(std::vector<SmallFunction>& out) {
    pending_.store(false, std::memory_order_release);
    std::lock_guard lock(mutex_);
    out.swap(items_);
  }

  /// Loop thread: refuses posts from now on and destroys the callbacks not run yet, outside the
  /// lock (their destructors may post to other loops, or complete concurrent futures).
  void close() noexcept {
    std::vector<SmallFunction> dropped;
    {
      std::lock_guard lock(mutex_);
      backend_ = nullptr;
      dropped.swap(items_);
    }
  }

 private:
  std::mutex mutex_;
  io::Backend* backend_;              ///< null once the loop is closed
  std::vector<SmallFunction> items_;  ///< posted, not taken yet
  std::atomic<bool> pending_{false};  ///< set by the first post after a take()
};

}  // namespace weave::detail

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
// The wakeup is sent after the mutex is released, so that the woken loop does not go straight
// back to sleep on it; `wakers_` counts posters between the two, and close() waits for them
// before the backend (which owns the wake fd) can go.

#include <atomic>
#include <mutex>
#include <thread>
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
    io::Backend* wake = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (backend_ == nullptr) return false;
      items_.push_back(std::move(fn));
      if (!pending_.exchange(true, std::memory_order_acq_rel)) {
        wake = backend_;
        wakers_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (wake != nullptr) {
      wake->wakeup();
      wakers_.fetch_sub(1, std::memory_order_release);
    }
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
    // A poster that saw the backend is at most one eventfd write away from done.
    while (wakers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  std::mutex mutex_;
  io::Backend* backend_;              ///< null once the loop is closed
  std::vector<SmallFunction> items_;  ///< posted, not taken yet
  std::atomic<bool> pending_{false};  ///< set by the first post after a take()
  std::atomic<int> wakers_{0};        ///< posters waking the backend outside the lock
};

}  // namespace weave::detail

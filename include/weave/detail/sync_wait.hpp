#pragma once
// The waiting machinery under every lock and queue (trio's parking lot, asyncio's deque of
// futures), with no allocation per wait: the waiting TaskCore is the list node.
//
// A WaitQueue has two lists:
// - `parked_`: tasks suspended on the primitive, FIFO. The core unlinks a task from here itself
//   when the task is cancelled (WaitKind::List), so a parked task is always a live waiter.
// - `woken_`: tasks the primitive has woken with a grant (a lock, a slot, "re-check the queue")
//   that have not run yet. This is asyncio's "future done but not cancelled": when such a task
//   turns out to be cancelled before it runs, it finds itself here and hands the grant on.
// A woken task sits in the ready queue (through next_ready) and in `woken_` (through the waiter
// links), never in two waiter lists: waking unlinks it from `parked_` first. It is taken out of
// `woken_` as the first thing it does when it runs, so its links are free again before it can
// wait on anything else.
//
// Loop binding follows asyncio's mixins._LoopBoundMixin: a primitive binds to the loop of its
// first wait, and a wait from another loop raises RuntimeError.

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "weave/detail/future_core.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

/// The loop a primitive is bound to. Loops are compared by their serial number, not by address:
/// a loop destroyed and another built at the same address (two weave::run calls in a row) are
/// different loops, and a binding never dereferences the loop it remembers.
class LoopBinding {
 public:
  LoopBinding() = default;
  LoopBinding(const LoopBinding&) = delete;
  LoopBinding& operator=(const LoopBinding&) = delete;

  /// Binds to the running loop, or throws RuntimeError naming `owner` when bound to another.
  void check(const char* owner);

 private:
  std::uint64_t serial_ = 0;  ///< the bound loop's serial; 0 while unbound
};

class WaitQueue {
 public:
  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  bool has_parked() const noexcept { return !parked_.empty(); }
  bool has_woken() const noexcept { return !woken_.empty(); }
  std::size_t parked() const noexcept { return parked_.size(); }

  void park(TaskCore* t, std::coroutine_handle<> h, const CallSite* site = nullptr) {
    parked_.push_back(t);
    begin_wait(t, h, WaitKind::List, &parked_, site);
  }

  /// Wakes the first parked task. With `grant`, the task is remembered in `woken_` until it
  /// runs, so that it can hand the wake-up on if it was cancelled meanwhile.
  bool wake_first(bool grant) noexcept {
    auto* t = static_cast<TaskCore*>(parked_.pop_front());
    if (t == nullptr) return false;
    if (grant) woken_.push_back(t);
    wake(t);
    return true;
  }

  /// Called by a resumed waiter: true when it was woken with a grant (and not withdrawn).
  bool take_grant(TaskCore* t) noexcept {
    if (!t->linked()) return false;
    woken_.remove(t);
    return true;
  }

  /// A suspended waiter's frame is destroyed without resuming (its loop is going away): unlink
  /// it so that the list never holds freed memory. Its grant, if any, goes with the loop.
  void forget(TaskCore* t) noexcept {
    if (!t->linked()) return;
    const bool parked = static_cast<WaitKind>(t->wait_kind) == WaitKind::List;
    (parked ? parked_ : woken_).remove(t);
  }

 private:
  WaiterList parked_;
  WaiterList woken_;
};

/// Suspends the current task in `queue` until woken or cancelled. On a cancellation that arrives
/// after a grant, `on_lost_grant()` runs before CancelledError propagates.
template <class OnLostGrant>
class Park {
 public:
  Park(WaitQueue& queue, LoopBinding& binding, const char* owner, OnLostGrant on_lost,
       const CallSite* site = nullptr)
      : queue_(queue),
        binding_(binding),
        owner_(owner),
        on_lost_(std::move(on_lost)),
        site_(site) {}
  Park(const Park&) = delete;
  Park& operator=(const Park&) = delete;
  ~Park() {
    if (task_ != nullptr) queue_.forget(task_);
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* t = require_task("wait on a synchronization primitive");
    binding_.check(owner_);
    task_ = t;
    queue_.park(t, h, site_);
  }
  /// Returns whether the task was woken with a grant.
  bool await_resume() {
    const bool granted = queue_.take_grant(task_);
    try {
      checkpoint(task_);
    } catch (...) {
      if (granted) on_lost_();
      throw;
    }
    return granted;
  }

 private:
  WaitQueue& queue_;
  LoopBinding& binding_;
  const char* owner_;
  OnLostGrant on_lost_;
  const CallSite* site_;  ///< the caller's weave call, for call graphs
  TaskCore* task_ = nullptr;
};

/// For waits whose wake-up is a broadcast and cannot be lost (Event, Condition's notify).
struct NoGrant {
  void operator()() const noexcept {}
};

/// The awaiter of Lock::acquire, Semaphore::acquire and Event::wait: no frame, just this object
/// in the caller's frame. `Prim` provides, to this class as a friend:
///   bool try_fast();                         // take it without waiting (asyncio's fast path)
///   void settle(bool granted, bool cancelled);  // bookkeeping once the wait is over
///   WaitQueue waiters_; LoopBinding binding_; static constexpr const char* kName;
/// `R` is what `co_await` yields: bool (asyncio's `True`) or void.
///
/// Two words: the primitive's address, its lowest bit set while the task is suspended here, and
/// the caller's line, which the task's wait_site points to while it waits (call graphs). The
/// awaiter sits in the frame of every waiting task, so a third word (the task) would cost a
/// million idle tasks 8 MB more; the task is the current one whenever it is needed (on resume, and
/// when a suspended frame is torn down, see destroy_task_frame).
template <class Prim, class R = bool>
class PrimitiveAwaiter {
 public:
  PrimitiveAwaiter(Prim& prim, CallSite site) noexcept
      : bits_(reinterpret_cast<std::uintptr_t>(&prim)), site_(site) {}
  // Movable before it is awaited, so that generic code (wait_for, gather) can carry it into a
  // coroutine frame of its own.
  PrimitiveAwaiter(PrimitiveAwaiter&& o) noexcept
      : bits_(std::exchange(o.bits_, o.bits_ & ~kSuspended)), site_(o.site_) {}
  PrimitiveAwaiter& operator=(PrimitiveAwaiter&&) = delete;
  ~PrimitiveAwaiter() {
    // Torn down while suspended (its loop is going away): unlink the task it parked.
    if ((bits_ & kSuspended) != 0) {
      if (TaskCore* t = current_task_core()) prim().waiters_.forget(t);
    }
  }

  bool await_ready() { return prim().try_fast(); }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* t = require_task(Prim::kWaitWhat);
    prim().binding_.check(Prim::kName);
    bits_ |= kSuspended;
    prim().waiters_.park(t, h, &site_);
  }
  R await_resume() {
    if ((bits_ & kSuspended) != 0) {
      bits_ &= ~kSuspended;
      TaskCore* task = current_task_core();  // the task resuming here
      const bool granted = prim().waiters_.take_grant(task);
      const bool cancelled = (task->flags & fflag::kMustCancel) != 0;
      prim().settle(granted, cancelled);
      if (cancelled) throw_cancelled(task);
    }
    if constexpr (!std::is_void_v<R>) return true;
  }

 protected:
  Prim& prim() const noexcept { return *reinterpret_cast<Prim*>(bits_ & ~kSuspended); }

 private:
  static constexpr std::uintptr_t kSuspended = 1;
  static_assert(alignof(Prim) > 1, "the lowest bit of the address is the suspended flag");
  std::uintptr_t bits_;
  CallSite site_;  ///< the caller's line, for call graphs
};

}  // namespace weave::detail

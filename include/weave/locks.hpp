#pragma once
/// \file locks.hpp
/// asyncio.locks: Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier.
///
/// None of them is thread-safe; all of them may be created outside a running loop and bind to the
/// loop of their first wait (RuntimeError when a wait comes from another loop, as asyncio).
/// Waiters are woken FIFO. A wake-up is never lost: a waiter woken with a grant (the lock, a
/// semaphore slot) and cancelled before it runs hands the grant on to the next waiter.
/// Lock::acquire, Semaphore::acquire and Event::wait return a small awaiter, not a coroutine, so
/// that waiting costs nothing beyond the waiting task's own frame.

#include <type_traits>
#include <utility>

#include "weave/coro.hpp"
#include "weave/detail/sync_wait.hpp"
#include "weave/errors.hpp"

namespace weave {

/// What `co_await x.scoped()` gives: `x` is held until this is destroyed (or release() is
/// called), like `async with x:`. Move-only.
template <class L>
class [[nodiscard]] Held {
 public:
  explicit Held(L& owner) noexcept : owner_(&owner) {}
  Held(Held&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
  Held& operator=(Held&& o) noexcept {
    if (this != &o) {
      reset();
      owner_ = std::exchange(o.owner_, nullptr);
    }
    return *this;
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  ~Held() { reset(); }

  /// Releases early; the destructor then does nothing.
  void release() { reset(); }
  bool owns() const noexcept { return owner_ != nullptr; }

 private:
  void reset() {
    if (L* o = std::exchange(owner_, nullptr)) o->release();
  }
  L* owner_;
};

namespace detail {
/// Acquires through `Inner` and yields a Held<L>.
template <class L, class Inner>
class ScopedAwaiter {
 public:
  ScopedAwaiter(L& owner, Inner& prim, CallSite site) noexcept
      : owner_(owner), inner_(prim, site) {}
  bool await_ready() { return inner_.await_ready(); }
  void await_suspend(std::coroutine_handle<> h) { inner_.await_suspend(h); }
  Held<L> await_resume() {
    inner_.await_resume();
    return Held<L>(owner_);
  }

 private:
  L& owner_;
  PrimitiveAwaiter<Inner> inner_;
};
}  // namespace detail

/// asyncio.Lock: a mutual-exclusion lock for tasks. Not reentrant; fair (FIFO, no barging: a task
/// that arrives while a woken waiter has not run yet queues behind it).
class Lock {
 public:
  using AcquireAwaiter = detail::PrimitiveAwaiter<Lock>;

  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// `co_await lock.acquire()` takes the lock, waiting while another task holds it; yields true.
  ///
  /// **Cancellation**: a waiting task is withdrawn from the queue and CancelledError raised here;
  /// the lock is not taken. When the lock had already been passed to this task, it is passed on
  /// to the next waiter before CancelledError propagates: no wake-up is lost. An acquire that does
  /// not have to wait does not suspend and so is not a cancellation point (as asyncio).
  ///
  /// **Errors**: CancelledError; RuntimeError outside a task when it has to wait, or when the
  /// lock is bound to another event loop.
  ///
  /// `site`, here and in every wait of this file: the caller's line, which call graphs show while
  /// the task waits; leave it defaulted.
  [[nodiscard]] AcquireAwaiter acquire(detail::CallSite site = detail::CallSite::here()) noexcept {
    return AcquireAwaiter(*this, site);
  }

  /// `auto held = co_await lock.scoped();` acquires and releases when `held` is destroyed.
  /// **Cancellation** and **Errors**: as acquire().
  [[nodiscard]] detail::ScopedAwaiter<Lock, Lock> scoped(
      detail::CallSite site = detail::CallSite::here()) noexcept {
    return {*this, *this, site};
  }

  /// Releases the lock and wakes the first waiter. Errors: RuntimeError when not locked.
  void release();
  bool locked() const noexcept { return locked_; }

 private:
  friend class detail::PrimitiveAwaiter<Lock>;
  static constexpr const char* kName = "Lock";
  static constexpr const char* kWaitWhat = "acquire a Lock";
  bool try_fast() noexcept;
  void settle(bool granted, bool cancelled) noexcept;

  bool locked_ = false;
  detail::WaitQueue waiters_;
  detail::LoopBinding binding_;
};

/// asyncio.Event: a flag that tasks can wait to become true.
class Event {
 public:
  using WaitAwaiter = detail::PrimitiveAwaiter<Event, void>;

  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// `co_await event.wait()` returns at once when the flag is set, else waits until set() is
  /// called. A waiter woken by set() returns even if clear() follows before it runs.
  ///
  /// **Cancellation**: the waiter is withdrawn and CancelledError raised here; the flag is not
  /// touched and the other waiters are not affected, so nothing is lost.
  ///
  /// **Errors**: CancelledError; RuntimeError outside a task when it has to wait, or when the
  /// event is bound to another event loop.
  [[nodiscard]] WaitAwaiter wait(detail::CallSite site = detail::CallSite::here()) noexcept {
    return WaitAwaiter(*this, site);
  }

  /// Sets the flag and wakes every waiter, in the order they began to wait.
  void set() noexcept;
  void clear() noexcept { value_ = false; }
  bool is_set() const noexcept { return value_; }

 private:
  friend class detail::PrimitiveAwaiter<Event, void>;
  static constexpr const char* kName = "Event";
  static constexpr const char* kWaitWhat = "wait on an Event";
  bool try_fast() const noexcept { return value_; }
  void settle(bool, bool) const noexcept {}

  bool value_ = false;
  detail::WaitQueue waiters_;
  detail::LoopBinding binding_;
};

/// asyncio.Condition: a lock plus a queue of tasks waiting to be notified. It owns a Lock unless
/// given one (which must outlive it).
class Condition {
 public:
  Condition() noexcept : lock_(own_) {}
  explicit Condition(Lock& lock) noexcept : lock_(lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// Acquires the underlying lock. **Cancellation** and **Errors**: as Lock::acquire().
  [[nodiscard]] Lock::AcquireAwaiter acquire(
      detail::CallSite site = detail::CallSite::here()) noexcept {
    return lock_.acquire(site);
  }
  /// Acquires the underlying lock until the result is destroyed. **Cancellation** and
  /// **Errors**: as Lock::acquire().
  [[nodiscard]] detail::ScopedAwaiter<Condition, Lock> scoped(
      detail::CallSite site = detail::CallSite::here()) noexcept {
    return {*this, lock_, site};
  }
  /// Releases the underlying lock. Errors: RuntimeError when not locked.
  void release() { lock_.release(); }
  bool locked() const noexcept { return lock_.locked(); }

  /// Releases the lock, waits for notify(), re-acquires the lock, yields true. The lock is held
  /// again whenever this returns or throws.
  ///
  /// **Cancellation**: the wait is withdrawn, the lock is re-acquired anyway (waiting for it if
  /// need be; a cancellation during that wait is deferred until it is held), and CancelledError
  /// raised. A notification that reached this task is passed to the next waiter, so none is lost
  /// (the next waiter may see a spurious wake-up, which the condition-variable protocol allows).
  ///
  /// **Errors**: RuntimeError when the lock is not held, outside a task, or when the condition
  /// is bound to another loop; CancelledError.
  Coro<bool> wait(detail::CallSite site = detail::CallSite::here());

  /// Waits until `pred()` is truthy; returns its last result. The lock must be held; `pred` is
  /// evaluated with it held. **Cancellation** and **Errors**: as wait().
  template <class Pred>
  Coro<std::decay_t<std::invoke_result_t<Pred&>>> wait_for(
      Pred pred, detail::CallSite site = detail::CallSite::here()) {
    auto result = pred();
    while (!result) {
      co_await wait(site);
      result = pred();
    }
    co_return result;
  }

  /// Wakes up to `n` waiting tasks. Errors: RuntimeError when the lock is not held.
  void notify(int n = 1);
  /// Wakes every waiting task. Errors: RuntimeError when the lock is not held.
  void notify_all();

 private:
  void wake(int n) noexcept;

  Lock own_;
  Lock& lock_;
  detail::WaitQueue waiters_;
  detail::LoopBinding binding_;
};

/// asyncio.Semaphore: a counter of free slots; acquire() takes one, release() gives one back.
/// FIFO: while tasks wait, a newcomer queues even if a slot is free.
class Semaphore {
 public:
  using AcquireAwaiter = detail::PrimitiveAwaiter<Semaphore>;

  /// Errors: ValueError when `value` is negative.
  explicit Semaphore(int value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// `co_await sem.acquire()` takes a slot, waiting until one is free; yields true.
  ///
  /// **Cancellation**: a waiting task is withdrawn and CancelledError raised here; no slot is
  /// taken. When a slot had already been given to this task, it is given back and passed to the
  /// next waiter before CancelledError propagates: nothing is lost. An acquire that does not have
  /// to wait is not a cancellation point.
  ///
  /// **Errors**: CancelledError; RuntimeError outside a task when it has to wait, or when the
  /// semaphore is bound to another event loop.
  [[nodiscard]] AcquireAwaiter acquire(detail::CallSite site = detail::CallSite::here()) noexcept {
    return AcquireAwaiter(*this, site);
  }
  /// Acquires a slot until the result is destroyed. **Cancellation** and **Errors**: as
  /// acquire().
  [[nodiscard]] detail::ScopedAwaiter<Semaphore, Semaphore> scoped(
      detail::CallSite site = detail::CallSite::here()) noexcept {
    return {*this, *this, site};
  }
  /// Gives a slot back and wakes the first waiter.
  void release() noexcept;
  /// True when acquire() would wait.
  bool locked() const noexcept;

 protected:
  int value_;

 private:
  friend class detail::PrimitiveAwaiter<Semaphore>;
  static constexpr const char* kName = "Semaphore";
  static constexpr const char* kWaitWhat = "acquire a Semaphore";
  bool try_fast() noexcept;
  void settle(bool granted, bool cancelled) noexcept;
  bool wake_next() noexcept;

  detail::WaitQueue waiters_;
  detail::LoopBinding binding_;
};

/// asyncio.BoundedSemaphore: a Semaphore that refuses to grow past its initial value.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1) : Semaphore(value), bound_(value) {}
  /// Errors: ValueError when it would raise the value above the initial one.
  void release();
  /// Acquires a slot until the result is destroyed. **Cancellation** and **Errors**: as
  /// Semaphore::acquire().
  [[nodiscard]] detail::ScopedAwaiter<BoundedSemaphore, Semaphore> scoped(
      detail::CallSite site = detail::CallSite::here()) noexcept {
    return {*this, *this, site};
  }

 private:
  int bound_;
};

/// asyncio.Barrier: `parties` tasks wait until all of them have arrived, then all go on together.
class Barrier {
 public:
  /// Errors: ValueError when `parties` < 1.
  explicit Barrier(int parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Waits until `parties` tasks are waiting; yields this task's arrival index, 0 to parties-1.
  /// A task arriving while the previous round drains waits for the drain to finish.
  ///
  /// **Cancellation**: CancelledError is raised here and this task no longer counts as arrived;
  /// the others keep waiting. The barrier is not broken.
  ///
  /// **Errors**: BrokenBarrierError when the barrier is broken by abort() or reset by reset()
  /// while this task waits, or broken when it arrives; CancelledError.
  Coro<int> wait(detail::CallSite site = detail::CallSite::here());

  /// Returns the barrier to its empty state; tasks waiting get BrokenBarrierError.
  /// **Cancellation**: as Lock::acquire() on the barrier's internal lock; nothing changes unless
  /// it completes. **Errors**: CancelledError.
  Coro<void> reset(detail::CallSite site = detail::CallSite::here());

  /// Breaks the barrier: current and future wait() calls raise BrokenBarrierError until reset().
  /// **Cancellation** and **Errors**: as reset().
  Coro<void> abort(detail::CallSite site = detail::CallSite::here());

  int parties() const noexcept { return parties_; }
  /// Tasks waiting in the filling barrier (0 while it drains).
  int n_waiting() const noexcept;
  bool broken() const noexcept;

 private:
  /// asyncio's _BarrierState.
  enum class State {
    Filling,    ///< tasks arrive and wait
    Draining,   ///< the last task arrived: waiters leave, newcomers wait for them
    Resetting,  ///< reset() while tasks wait: they leave with BrokenBarrierError
    Broken,     ///< abort(): every wait raises BrokenBarrierError
  };
  Coro<void> block(detail::CallSite site);
  Coro<void> wait_filled(detail::CallSite site);
  void exit();

  Condition cond_;
  int parties_;
  int count_ = 0;
  State state_ = State::Filling;
};

}  // namespace weave

#pragma once
// Shared state behind weave::concurrent::Future<T>.
//
// One mutex guards the whole state. The value or exception is written once, under the mutex,
// before state_ becomes Finished, and never changes afterwards: that is why result() may hand out
// a reference once it has seen Finished. Done callbacks are moved out under the mutex and run
// outside it, in the thread that completed the future, so that a callback may use this future or
// any other without deadlock. Waiters (wait(), as_completed()) are told of each completion while
// the future's mutex is held; the lock order is always future -> waiter, never the reverse, and a
// waiter is detached under the future's mutex, so after detach() returns no thread touches it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "weave/clock.hpp"

namespace weave::concurrent::detail {

enum class State : unsigned char {
  Pending,               // created or queued: cancel() succeeds
  Running,               // set_running_or_notify_cancel() said yes: cancel() fails
  Cancelled,             // cancel() succeeded; the executor has not looked at it yet
  CancelledAndNotified,  // the executor saw the cancellation and dropped the call
  Finished,              // holds a value or an exception, forever
};

/// What wait() waits for; as_completed() uses Any.
enum class Wake : unsigned char { Any, FirstException, All };

/// One wait() or as_completed() call watching many futures. Futures push the tag they were
/// attached with when they complete; the owner pops tags. Methods are thread-safe.
class Waiter {
 public:
  /// `expected`: how many futures will be attached (counted before attaching, so that a
  /// completion racing with the attaching is never lost).
  Waiter(Wake mode, std::size_t expected) : mode_(mode), remaining_(expected) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  /// Called by a future, under its own mutex, when it completes.
  void add(std::size_t tag, bool failed);
  /// Blocks until the wake condition holds or the deadline passes; true if it holds.
  bool wait_until(std::optional<Clock::time_point> deadline);
  /// Blocks for the next completed tag; nullopt when the deadline passed first.
  std::optional<std::size_t> pop(std::optional<Clock::time_point> deadline);
  /// The tags completed so far, in completion order.
  std::vector<std::size_t> finished();
  /// `n` of the futures counted at construction were done before they could be attached and
  /// will never report.
  void forget(std::size_t n);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::size_t> finished_;  // completion order; pop() reads from next_
  std::size_t next_ = 0;               // first tag pop() has not returned yet
  Wake mode_;
  std::size_t remaining_;   // attached futures that have not completed yet
  bool triggered_ = false;  // the wake condition has held once (it never un-holds)
};

class FutureStateBase;

/// Something that can move futures towards completion from the thread that waits for one: a
/// process pool reads its workers' replies there instead of waiting to be woken by its own
/// thread. Waits call it before they sleep.
class Helper {
 public:
  Helper() = default;
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;
  virtual ~Helper() = default;
  /// Works towards `state` being done for at most about `budget`; may return earlier.
  virtual void help(const FutureStateBase& state, std::chrono::nanoseconds budget) = 0;
};

class FutureStateBase {
 public:
  using Callback = std::function<void(const std::shared_ptr<FutureStateBase>&)>;

  FutureStateBase() = default;
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;

  bool done() const;
  bool cancelled() const;
  bool running() const;
  /// asyncio/concurrent.futures cancel(): true if cancelled (now or before), false once running.
  bool cancel(const std::shared_ptr<FutureStateBase>& self);
  /// false if cancelled (the caller must drop the call); true if now Running.
  bool set_running_or_notify_cancel();
  /// Completes with an exception; false (no change) if already done.
  bool try_set_exception(const std::shared_ptr<FutureStateBase>& self, std::exception_ptr error);
  /// Waits, then returns the exception (or null). Throws CancelledError or TimeoutError.
  std::exception_ptr exception(std::optional<Clock::duration> timeout);
  /// Waits for a value: throws CancelledError, TimeoutError, or the stored exception.
  void wait_for_value(std::optional<Clock::duration> timeout);
  void add_done_callback(const std::shared_ptr<FutureStateBase>& self, Callback fn);
  /// For the one consumer of a finished future that no one else can see (the event loop's
  /// run_in_executor): moves the exception out, so that the thread that frees the state later
  /// does not free the exception too. The future must not be read afterwards.
  std::exception_ptr take_exception();

  /// Attaches a waiter; returns false without attaching if the future is already done, and
  /// then sets `failed` to whether it holds an exception.
  bool attach(Waiter* waiter, std::size_t tag, bool& failed);
  void detach(Waiter* waiter);

  /// For executors, before the future is visible to any other thread: who can help a waiter.
  void set_helper(std::weak_ptr<Helper> helper) noexcept { helper_ = std::move(helper); }
  /// True once done; no lock, for spinning and helpers.
  bool done_now() const noexcept { return done_word_.load(std::memory_order_acquire) != 0; }

 protected:
  /// Runs `fill` (which stores the value) and completes, unless already done. Returns whether it
  /// completed. Runs the callbacks in this thread.
  template <class Fill>
  bool complete(const std::shared_ptr<FutureStateBase>& self, Fill&& fill) {
    std::vector<Callback> callbacks;
    {
      std::lock_guard lock(mutex_);
      if (is_done_locked()) return false;
      std::forward<Fill>(fill)();
      finish_locked(callbacks, false);
    }
    wake_sleepers();
    run_callbacks(callbacks, self);
    return true;
  }

 private:
  struct WaiterLink {
    Waiter* waiter;
    std::size_t tag;
  };

  bool is_done_locked() const noexcept {
    return state_ == State::Finished || state_ == State::Cancelled ||
           state_ == State::CancelledAndNotified;
  }
  /// Waits until done (true) or until `timeout` passes (false); returns with mutex_ held.
  bool wait_done(std::unique_lock<std::mutex>& lock, std::optional<Clock::duration> timeout);
  void finish_locked(std::vector<Callback>& callbacks, bool failed);
  /// After a move to a done state, once mutex_ is released: wakes result()/exception() sleepers
  /// without making them queue for the mutex the waker still holds.
  void wake_sleepers() noexcept;
  static void run_callbacks(std::vector<Callback>& callbacks,
                            const std::shared_ptr<FutureStateBase>& self);

  mutable std::mutex mutex_;
  std::condition_variable done_cv_;  // result()/exception() sleepers with a timeout
  std::atomic<int> done_word_{0};    // 1 once done (release); the futex of untimed sleepers
  State state_ = State::Pending;
  std::exception_ptr error_;         // set iff Finished with an exception
  std::vector<Callback> callbacks_;  // emptied when the future completes
  std::vector<WaiterLink> waiters_;  // wait()/as_completed() calls watching this future
  std::weak_ptr<Helper> helper_;     // set once, before the future is shared
};

template <class T>
class FutureState : public FutureStateBase {
 public:
  template <class... A>
  bool try_set_result(const std::shared_ptr<FutureStateBase>& self, A&&... value) {
    return complete(self, [&] { value_.emplace(std::forward<A>(value)...); });
  }
  /// Valid only after wait_for_value() returned.
  T& value() noexcept { return *value_; }
  /// take_exception()'s twin for the value: moves it out of a finished, private future.
  T take_value() { return std::move(*value_); }

 private:
  std::optional<T> value_;  // engaged iff Finished without an exception
};

template <>
class FutureState<void> : public FutureStateBase {
 public:
  bool try_set_result(const std::shared_ptr<FutureStateBase>& self) {
    return complete(self, [] {});
  }
};

}  // namespace weave::concurrent::detail

// The non-template half of concurrent::Future: state transitions, blocking waits, callbacks and
// the Waiter used by wait()/as_completed().
//
// Invariants (see concurrent_future.hpp): state_ only moves forward (Pending -> Running ->
// Finished, or Pending -> Cancelled -> CancelledAndNotified); every transition into a done state
// happens under mutex_, sets done_word_, reports to every attached waiter and hands the
// callbacks, moved out under the lock, to the completing thread, which wakes the sleepers once
// it has released the lock (wake_sleepers). Exceptions thrown by
// callbacks are reported and swallowed so that one bad callback cannot stop the others or
// unwind into an executor's worker.

#include <cstdio>
#include <typeinfo>

#include "concurrent/spin.hpp"
#include "weave/concurrent.hpp"

namespace weave::concurrent {

bool FutureBase::set_running_or_notify_cancel() const {
  return state_->set_running_or_notify_cancel();
}

void FutureBase::set_exception(std::exception_ptr error) const {
  if (!state_->try_set_exception(state_, std::move(error))) {
    throw InvalidStateError("Future is already done");
  }
}

}  // namespace weave::concurrent

namespace weave::concurrent::detail {

namespace {

// How long result() and exception() watch the future before sleeping: longer than a short call
// plus its hand-off, short enough that a long call wastes only a sliver of a CPU on it.
constexpr std::chrono::microseconds kResultSpin{20};

}  // namespace

bool FutureStateBase::done() const {
  std::lock_guard lock(mutex_);
  return is_done_locked();
}

bool FutureStateBase::cancelled() const {
  std::lock_guard lock(mutex_);
  return state_ == State::Cancelled || state_ == State::CancelledAndNotified;
}

bool FutureStateBase::running() const {
  std::lock_guard lock(mutex_);
  return state_ == State::Running;
}

bool FutureStateBase::cancel(const std::shared_ptr<FutureStateBase>& self) {
  std::vector<Callback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::Running || state_ == State::Finished) return false;
    if (state_ != State::Pending) return true;
    state_ = State::Cancelled;
    finish_locked(callbacks, false);
  }
  wake_sleepers();
  run_callbacks(callbacks, self);
  return true;
}

bool FutureStateBase::set_running_or_notify_cancel() {
  std::lock_guard lock(mutex_);
  if (state_ == State::Cancelled) {
    state_ = State::CancelledAndNotified;
    return false;
  }
  if (state_ != State::Pending) throw RuntimeError("Future in unexpected state");
  state_ = State::Running;
  return true;
}

bool FutureStateBase::try_set_exception(const std::shared_ptr<FutureStateBase>& self,
                                        std::exception_ptr error) {
  std::vector<Callback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (is_done_locked()) return false;
    error_ = std::move(error);
    finish_locked(callbacks, true);
  }
  wake_sleepers();
  run_callbacks(callbacks, self);
  return true;
}

std::exception_ptr FutureStateBase::exception(std::optional<Clock::duration> timeout) {
  std::unique_lock<std::mutex> lock;
  if (!wait_done(lock, timeout)) throw TimeoutError();
  if (state_ != State::Finished) throw CancelledError();
  return error_;
}

void FutureStateBase::wait_for_value(std::optional<Clock::duration> timeout) {
  std::unique_lock<std::mutex> lock;
  if (!wait_done(lock, timeout)) throw TimeoutError();
  if (state_ != State::Finished) throw CancelledError();
  if (error_) std::rethrow_exception(error_);
}

void FutureStateBase::add_done_callback(const std::shared_ptr<FutureStateBase>& self, Callback fn) {
  {
    std::lock_guard lock(mutex_);
    if (!is_done_locked()) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  std::vector<Callback> now;
  now.push_back(std::move(fn));
  run_callbacks(now, self);
}

std::exception_ptr FutureStateBase::take_exception() {
  std::lock_guard lock(mutex_);
  return std::exchange(error_, nullptr);
}

bool FutureStateBase::attach(Waiter* waiter, std::size_t tag, bool& failed) {
  std::lock_guard lock(mutex_);
  if (is_done_locked()) {
    failed = error_ != nullptr;
    return false;
  }
  waiters_.push_back({waiter, tag});
  return true;
}

void FutureStateBase::detach(Waiter* waiter) {
  std::lock_guard lock(mutex_);
  std::erase_if(waiters_, [waiter](const WaiterLink& link) { return link.waiter == waiter; });
}

bool FutureStateBase::wait_done(std::unique_lock<std::mutex>& lock,
                                std::optional<Clock::duration> timeout) {
  auto is_set = [this] { return done_now(); };
  // Before sleeping: let the executor work towards the result here, or watch for it briefly.
  auto spin = [&](std::chrono::nanoseconds budget) {
    if (std::shared_ptr<Helper> helper = helper_.lock()) {
      helper->help(*this, budget);
    } else {
      spin_until(is_set, budget);
    }
  };
  if (!timeout) {
    // Untimed: sleep on the futex of done_word_ itself, not on the condition variable, so that
    // waking needs no mutex hand-off (wake_sleepers() runs after the completer unlocked).
    if (!is_set()) spin(kResultSpin);
    while (!is_set()) done_word_.wait(0, std::memory_order_acquire);
    lock = std::unique_lock(mutex_);
    return true;
  }
  if (*timeout > Clock::duration::zero()) {
    auto deadline = Clock::now() + *timeout;
    if (!is_set()) spin(std::min<std::chrono::nanoseconds>(*timeout, kResultSpin));
    lock = std::unique_lock(mutex_);
    return done_cv_.wait_until(lock, deadline, [this] { return is_done_locked(); });
  }
  lock = std::unique_lock(mutex_);
  return is_done_locked();
}

void FutureStateBase::wake_sleepers() noexcept {
  done_word_.notify_all();
  done_cv_.notify_all();
}

void FutureStateBase::finish_locked(std::vector<Callback>& callbacks, bool failed) {
  if (state_ != State::Cancelled) state_ = State::Finished;
  done_word_.store(1, std::memory_order_release);
  for (const WaiterLink& link : waiters_) link.waiter->add(link.tag, failed);
  waiters_.clear();
  callbacks.swap(callbacks_);
}

void FutureStateBase::run_callbacks(std::vector<Callback>& callbacks,
                                    const std::shared_ptr<FutureStateBase>& self) {
  for (Callback& fn : callbacks) {
    try {
      fn(self);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "weave::concurrent: exception calling callback for future: %s\n",
                   e.what());
    } catch (...) {
      std::fprintf(stderr, "weave::concurrent: exception calling callback for future\n");
    }
  }
}

void Waiter::add(std::size_t tag, bool failed) {
  std::lock_guard lock(mutex_);
  finished_.push_back(tag);
  --remaining_;
  bool wake = mode_ == Wake::Any || remaining_ == 0 || (mode_ == Wake::FirstException && failed);
  if (wake) {
    triggered_ = true;
    cv_.notify_all();
  }
}

void Waiter::forget(std::size_t n) {
  std::lock_guard lock(mutex_);
  remaining_ -= n;
  if (remaining_ == 0) {
    triggered_ = true;
    cv_.notify_all();
  }
}

bool Waiter::wait_until(std::optional<Clock::time_point> deadline) {
  std::unique_lock lock(mutex_);
  auto ready = [this] { return triggered_; };
  if (!deadline) {
    cv_.wait(lock, ready);
    return true;
  }
  return cv_.wait_until(lock, *deadline, ready);
}

std::optional<std::size_t> Waiter::pop(std::optional<Clock::time_point> deadline) {
  std::unique_lock lock(mutex_);
  auto ready = [this] { return next_ < finished_.size(); };
  if (!deadline) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_until(lock, *deadline, ready)) {
    return std::nullopt;
  }
  return finished_[next_++];
}

std::vector<std::size_t> Waiter::finished() {
  std::lock_guard lock(mutex_);
  return finished_;
}

}  // namespace weave::concurrent::detail

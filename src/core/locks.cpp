// The non-template half of locks.hpp, and the loop binding every primitive uses. Each primitive
// follows the corresponding class of CPython's Lib/asyncio/locks.py line by line where it can;
// the comments point out where weave's intrusive waiter lists make a step unnecessary.

#include <string>

#include "core/loop_impl.hpp"
#include "weave/locks.hpp"

namespace weave {

namespace detail {

void LoopBinding::check(const char* owner) {
  LoopImpl* loop = running_impl();
  if (loop == nullptr) throw RuntimeError(std::string(owner) + " used outside a running loop");
  const std::uint64_t serial = loop->serial;
  if (serial_ == 0) {
    serial_ = serial;
  } else if (serial != serial_) {
    throw RuntimeError(std::string(owner) + " is bound to a different event loop");
  }
}

}  // namespace detail

// ---- Lock ---------------------------------------------------------------------------------------
// asyncio releases without handing over: `locked_` drops to false and the first waiter is woken to
// take the lock when it runs. Newcomers do not barge in meanwhile (asyncio's "all waiters
// cancelled" test): a woken waiter in `woken_` counts as waiting.

bool Lock::try_fast() noexcept {
  if (locked_ || waiters_.has_parked() || waiters_.has_woken()) return false;
  locked_ = true;
  return true;
}

void Lock::settle(bool granted, bool cancelled) noexcept {
  if (!cancelled) {
    locked_ = true;
    return;
  }
  // Woken, then cancelled before it could take the lock: the next waiter gets the wake-up.
  if (granted && !locked_) waiters_.wake_first(true);
}

void Lock::release() {
  if (!locked_) throw RuntimeError("Lock is not acquired.");
  locked_ = false;
  waiters_.wake_first(true);
}

// ---- Event --------------------------------------------------------------------------------------

void Event::set() noexcept {
  if (value_) return;
  value_ = true;
  while (waiters_.wake_first(false)) {
  }
}

// ---- Condition ----------------------------------------------------------------------------------

Coro<bool> Condition::wait(detail::CallSite site) {
  if (!locked()) throw RuntimeError("cannot wait on un-acquired lock");
  lock_.release();
  // C++ cannot co_await in a handler, so each error is kept and acted on after its block.
  std::exception_ptr error;
  try {
    co_await detail::Park(waiters_, binding_, "Condition", detail::NoGrant{}, &site);
  } catch (...) {
    error = std::current_exception();
  }
  // The lock must be held again however the wait ended; a cancellation meanwhile is deferred.
  for (;;) {
    try {
      co_await lock_.acquire(site);
      break;
    } catch (const CancelledError&) {
      error = std::current_exception();
    }
  }
  if (error) {
    // This task may have been notified just before it failed: notify another one instead.
    wake(1);
    std::rethrow_exception(error);
  }
  co_return true;
}

void Condition::notify(int n) {
  if (!locked()) throw RuntimeError("cannot notify on un-acquired lock");
  wake(n);
}

void Condition::notify_all() {
  notify(static_cast<int>(waiters_.parked()));
}

void Condition::wake(int n) noexcept {
  for (int i = 0; i < n && waiters_.wake_first(false); ++i) {
  }
}

// ---- Semaphore ----------------------------------------------------------------------------------
// As asyncio 3.12: a slot is taken from value_ when a waiter is woken, not when it runs, and a
// woken waiter keeps the semaphore "locked" for newcomers until it runs.

Semaphore::Semaphore(int value) : value_(value) {
  if (value < 0) throw ValueError("Semaphore initial value must be >= 0");
}

bool Semaphore::locked() const noexcept {
  return value_ == 0 || waiters_.has_parked() || waiters_.has_woken();
}

bool Semaphore::try_fast() noexcept {
  if (locked()) return false;
  --value_;
  return true;
}

bool Semaphore::wake_next() noexcept {
  if (!waiters_.has_parked()) return false;
  --value_;
  waiters_.wake_first(true);
  return true;
}

void Semaphore::settle(bool granted, bool cancelled) noexcept {
  if (granted && cancelled) ++value_;  // the slot this task will not use
  // Slots freed while tasks queued behind a woken one go to them now (asyncio's `finally`).
  while (value_ > 0 && wake_next()) {
  }
}

void Semaphore::release() noexcept {
  ++value_;
  wake_next();
}

void BoundedSemaphore::release() {
  if (value_ >= bound_) throw ValueError("BoundedSemaphore released too many times");
  Semaphore::release();
}

// ---- Barrier ------------------------------------------------------------------------------------

Barrier::Barrier(int parties) : parties_(parties) {
  if (parties < 1) throw ValueError("parties must be > 0");
}

Coro<int> Barrier::wait(detail::CallSite site) {
  auto held = co_await cond_.scoped(site);
  co_await block(site);
  const int index = count_++;
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      state_ = State::Draining;  // the last one in releases the others
      cond_.notify_all();
    } else {
      co_await wait_filled(site);
    }
  } catch (...) {
    error = std::current_exception();
  }
  --count_;
  exit();
  if (error) std::rethrow_exception(error);
  co_return index;
}

Coro<void> Barrier::block(detail::CallSite site) {
  // A draining or resetting barrier lets its current waiters out before anyone new comes in.
  co_await cond_.wait_for(
      [this] { return state_ != State::Draining && state_ != State::Resetting; }, site);
  if (state_ == State::Broken) throw BrokenBarrierError();
}

Coro<void> Barrier::wait_filled(detail::CallSite site) {
  co_await cond_.wait_for([this] { return state_ != State::Filling; }, site);
  if (state_ == State::Broken || state_ == State::Resetting) throw BrokenBarrierError();
}

void Barrier::exit() {
  // The last task out of a draining or resetting barrier opens it for the next round.
  if (count_ == 0) {
    if (state_ == State::Resetting || state_ == State::Draining) state_ = State::Filling;
    cond_.notify_all();
  }
}

Coro<void> Barrier::reset(detail::CallSite site) {
  auto held = co_await cond_.scoped(site);
  state_ = count_ > 0 ? State::Resetting : State::Filling;
  cond_.notify_all();
}

Coro<void> Barrier::abort(detail::CallSite site) {
  auto held = co_await cond_.scoped(site);
  state_ = State::Broken;
  cond_.notify_all();
}

int Barrier::n_waiting() const noexcept {
  return state_ == State::Filling ? count_ : 0;
}

bool Barrier::broken() const noexcept {
  return state_ == State::Broken;
}

}  // namespace weave

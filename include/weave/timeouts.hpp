#pragma once
/// \file timeouts.hpp
/// timeout / timeout_at / wait_for, after asyncio.timeouts: when the deadline passes, the
/// current task is cancelled; the cancellation that this timeout caused comes out as
/// TimeoutError, while a cancellation from outside stays a CancelledError.

#include <concepts>
#include <optional>
#include <type_traits>
#include <utility>

#include "weave/task.hpp"

namespace weave {

/// asyncio.Timeout, the context manager timeout()/timeout_at() hand to their body: a deadline
/// that can move while the body runs. Lives for the body's duration only.
class Timeout {
 public:
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout() { timer_.cancel(); }

  /// The deadline, in the loop's clock; nullopt when it never fires.
  std::optional<Clock::time_point> when() const noexcept { return when_; }
  /// Moves the deadline (nullopt: never); a deadline already past fires on the next iteration.
  /// Errors: RuntimeError once the timeout expired or its body ended.
  void reschedule(std::optional<Clock::time_point> when) {
    if (expired_ || done_) throw RuntimeError("Cannot change state of expiring Timeout.");
    timer_.cancel();
    when_ = when;
    if (!when) return;
    EventLoop& loop = get_running_loop();
    auto on_timeout = [this] {
      expired_ = true;
      detail::task_cancel(task_.core(), {});
    };
    timer_ = *when <= Clock::now() ? loop.call_soon(on_timeout) : loop.call_at(*when, on_timeout);
  }
  /// True once the deadline passed (the body was cancelled for it).
  bool expired() const noexcept { return expired_; }

  /// The body's end (internal): the deadline no longer fires. True when the body's
  /// CancelledError is this timeout's and must become TimeoutError (asyncio's __aexit__).
  bool exit(bool cancelled) noexcept {
    timer_.cancel();
    done_ = true;
    return expired_ && task_.uncancel() <= cancelling_at_enter_ && cancelled;
  }

  explicit Timeout(detail::TaskCore* task) noexcept
      : task_(task), cancelling_at_enter_(task_.cancelling()) {}

 private:
  TaskRef task_;
  int cancelling_at_enter_;
  Handle timer_;
  std::optional<Clock::time_point> when_;
  bool expired_ = false;
  bool done_ = false;
};

namespace detail {
template <class A>
struct awaited {
  using type = typename std::decay_t<A>::value_type;
};

/// Awaits `aw`; a future or task's wait names `site` (it lives in the caller's frame).
template <class A>
auto await_at(A& aw, const CallSite* site) {
  if constexpr (requires { aw.operator co_await().site; }) {
    auto waiting = aw.operator co_await();
    waiting.site = site;
    return waiting;
  } else {
    return std::move(aw).operator co_await();
  }
}

template <class A>
Coro<typename awaited<A>::type> timeout_at_impl(Clock::time_point when, A aw, CallSite site) {
  using T = typename awaited<A>::type;
  TaskRef self(require_task("enter a timeout"));
  const int cancelling_at_enter = self.cancelling();
  EventLoop& loop = get_running_loop();
  bool expired = false;
  auto on_timeout = [&expired, core = self.core()] {
    expired = true;
    task_cancel(core, {});
  };
  // A deadline already past fires on the next iteration (asyncio: call_soon), not inline.
  Handle timer = when <= Clock::now() ? loop.call_soon(on_timeout) : loop.call_at(when, on_timeout);
  bool cancelled = false;
  std::exception_ptr error;
  std::optional<Outcome<T>> result;
  try {
    auto waiting = await_at(aw, &site);
    if constexpr (std::is_void_v<T>) {
      co_await waiting;
      result.emplace(std::monostate{});
    } else {
      result.emplace(co_await waiting);
    }
  } catch (const CancelledError&) {
    cancelled = true;
    error = std::current_exception();
  } catch (...) {
    error = std::current_exception();
  }
  timer.cancel();
  // asyncio's __aexit__: an expired timeout always takes its cancellation back.
  if (expired && self.uncancel() <= cancelling_at_enter && cancelled) throw TimeoutError();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*result).value();
}
}  // namespace detail

namespace detail {
template <class F>
using timeout_body_t = typename std::invoke_result_t<F&, Timeout&>::value_type;

template <class F>
Coro<timeout_body_t<F>> timeout_body(std::optional<Clock::time_point> when, F fn) {
  using T = timeout_body_t<F>;
  Timeout cm(require_task("enter a timeout"));
  cm.reschedule(when);
  bool cancelled = false;
  std::exception_ptr error;
  std::optional<Outcome<T>> result;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await fn(cm);
      result.emplace(std::monostate{});
    } else {
      result.emplace(co_await fn(cm));
    }
  } catch (const CancelledError&) {
    cancelled = true;
    error = std::current_exception();
  } catch (...) {
    error = std::current_exception();
  }
  if (cm.exit(cancelled)) throw TimeoutError();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*result).value();
}
}  // namespace detail

/// asyncio.timeout_at as a context manager: `fn(cm)` (a Coro) runs with the deadline `when`,
/// which it may move through `cm` (see Timeout); nullopt never fires.
///   co_await weave::timeout_at(t, [&](weave::Timeout& cm) -> weave::Coro<void> { ... });
/// Errors: TimeoutError when the deadline passes first; whatever the body raises.
template <class F>
requires std::invocable<F&, Timeout&>
auto timeout_at(std::optional<Clock::time_point> when, F&& fn) {
  return detail::timeout_body(when, std::forward<F>(fn));
}

/// asyncio.timeout as a context manager: timeout_at(now + delay, fn); nullopt never fires.
template <class F>
requires std::invocable<F&, Timeout&>
auto timeout(std::optional<Clock::duration> delay, F&& fn) {
  std::optional<Clock::time_point> when;
  if (delay) when = Clock::now() + *delay;
  return detail::timeout_body(when, std::forward<F>(fn));
}

/// Awaits `awaitable` (Coro, Task or Future) with a deadline. Errors: TimeoutError when the
/// deadline passes first (the awaitable is cancelled: a Coro is abandoned at its await, a Task
/// or Future is cancelled); otherwise whatever the awaitable raises. Cancellation from outside
/// propagates as CancelledError. `site` is the caller's line, for call graphs (leave it
/// defaulted): a task waiting here on a Task or Future shows it.
template <class A>
requires(!std::invocable<A&, Timeout&>) auto timeout_at(
    Clock::time_point when, A&& awaitable, detail::CallSite site = detail::CallSite::here()) {
  return detail::timeout_at_impl(when, std::forward<A>(awaitable), site);
}

/// timeout_at(now + delay, awaitable).
template <class A>
requires(!std::invocable<A&, Timeout&>) auto timeout(
    Clock::duration delay, A&& awaitable, detail::CallSite site = detail::CallSite::here()) {
  return timeout_at(Clock::now() + delay, std::forward<A>(awaitable), site);
}

namespace detail {
template <class F>
Coro<typename F::value_type> wait_for_now(F fut) {
  if (!fut.done()) {
    fut.cancel();
    try {
      co_await shield(fut);  // a cancel from outside must not cancel `fut` a second time
    } catch (const CancelledError&) {
      if (!fut.done()) throw;
    }
  }
  try {
    co_return fut.result();
  } catch (const CancelledError&) {
  }
  throw TimeoutError();
}
template <class F>
Coro<typename F::value_type> wait_forever(F fut, CallSite site) {
  auto waiting = fut.operator co_await();
  waiting.site = &site;
  co_return co_await waiting;
}
}  // namespace detail

/// asyncio.wait_for(aw, None): waits with no deadline.
/// `site` is the caller's line, for call graphs (leave it defaulted).
template <class A>
auto wait_for(A&& awaitable, std::nullopt_t, detail::CallSite site = detail::CallSite::here()) {
  using F = decltype(detail::as_future(std::forward<A>(awaitable)));
  return detail::wait_forever<F>(detail::as_future(std::forward<A>(awaitable)), site);
}

/// asyncio.wait_for: timeout(delay, awaitable); a delay <= 0 cancels at once unless the
/// awaitable is already done. Errors: TimeoutError; the awaitable's own exception.
template <class A>
auto wait_for(A&& awaitable, Clock::duration delay,
              detail::CallSite site = detail::CallSite::here()) {
  using F = decltype(detail::as_future(std::forward<A>(awaitable)));
  if (delay <= Clock::duration::zero()) {
    return detail::wait_for_now<F>(detail::as_future(std::forward<A>(awaitable)));
  }
  return timeout(delay, std::forward<A>(awaitable), site);
}

}  // namespace weave

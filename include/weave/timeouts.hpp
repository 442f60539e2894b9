#pragma once
/// \file timeouts.hpp
/// timeout / timeout_at / wait_for, after asyncio.timeouts: when the deadline passes, the
/// current task is cancelled; the cancellation that this timeout caused comes out as
/// TimeoutError, while a cancellation from outside stays a CancelledError.

#include <type_traits>
#include <utility>

#include "weave/task.hpp"

namespace weave {

namespace detail {
template <class A>
struct awaited {
  using type = typename std::decay_t<A>::value_type;
};

template <class A>
Coro<typename awaited<A>::type> timeout_at_impl(Clock::time_point when, A aw) {
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
    if constexpr (std::is_void_v<T>) {
      co_await std::move(aw);
      result.emplace(std::monostate{});
    } else {
      result.emplace(co_await std::move(aw));
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

/// Awaits `awaitable` (Coro, Task or Future) with a deadline. Errors: TimeoutError when the
/// deadline passes first (the awaitable is cancelled: a Coro is abandoned at its await, a Task
/// or Future is cancelled); otherwise whatever the awaitable raises. Cancellation from outside
/// propagates as CancelledError.
template <class A>
auto timeout_at(Clock::time_point when, A&& awaitable) {
  return detail::timeout_at_impl(when, std::forward<A>(awaitable));
}

/// timeout_at(now + delay, awaitable).
template <class A>
auto timeout(Clock::duration delay, A&& awaitable) {
  return timeout_at(Clock::now() + delay, std::forward<A>(awaitable));
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
}  // namespace detail

/// asyncio.wait_for: timeout(delay, awaitable); a delay <= 0 cancels at once unless the
/// awaitable is already done. Errors: TimeoutError; the awaitable's own exception.
template <class A>
auto wait_for(A&& awaitable, Clock::duration delay) {
  using F = decltype(detail::as_future(std::forward<A>(awaitable)));
  if (delay <= Clock::duration::zero()) {
    return detail::wait_for_now<F>(detail::as_future(std::forward<A>(awaitable)));
  }
  return timeout(delay, std::forward<A>(awaitable));
}

}  // namespace weave

#pragma once
/// \file task.hpp
/// Task<T> (asyncio.Task), create_task, current_task, all_tasks, sleep, and the combinators:
/// gather/gather_settled, wait, as_completed, shield.

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/contextvars.hpp"
#include "weave/coro.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"

namespace weave {

/// create_task's options (asyncio's name, context and eager_start keywords).
struct TaskOptions {
  std::string name;
  /// The context the task runs in (shared, as asyncio's `context=`); default: a copy of the
  /// current one.
  std::optional<Context> context;
  /// Runs the first step at once, inside create_task (asyncio 3.12's eager_start), when the
  /// loop is running; a task that finishes there never goes through the ready queue.
  bool eager_start = false;
};

/// asyncio.eager_task_factory: every task the loop creates starts eagerly.
void eager_task_factory(EventLoop& loop, TaskOptions& options);
/// asyncio.create_eager_task_factory: `custom` (may be null) adjusts the options first, then the
/// task starts eagerly.
TaskFactory create_eager_task_factory(TaskFactory custom);

namespace detail {
/// Turns a released frame into a task of `loop`: registers, names and schedules its first step.
/// True when the loop's task factory made it eager: the caller then takes its handle and runs
/// the first step with eager_step() (the task is registered, not queued).
/// `name` (may be null: unnamed) is moved from; a pointer, so that the common unnamed task
/// moves no string through the calls. `created_at` is kept in debug mode, for its reports.
bool start_task(EventLoop* loop, TaskCore* core, std::string* name, CallSite created_at);
/// The same with options (and the loop's task factory).
bool start_task(EventLoop* loop, TaskCore* core, TaskOptions& options, CallSite created_at);
/// Runs an eager task's first step now, with the task current, in its own context.
void eager_step(TaskCore* core) noexcept;
void check_not_self(TaskCore* awaited, TaskCore* awaiting);
/// sleep() with a positive delay (task.cpp).
Coro<void> sleep_for(Clock::duration delay, CallSite site);

template <class T>
Promise<T>* promise_of(TaskCore* core) noexcept {
  return static_cast<Promise<T>*>(static_cast<PromiseBase*>(core));
}
}  // namespace detail

/// A Coro scheduled on its loop: asyncio.Task. A cheap copyable handle; the loop keeps a running
/// task alive until it finishes even when every handle is dropped, and the handle keeps the result
/// readable after the task and its loop are done.
template <class T = void>
class Task : public TaskRef {
 public:
  using value_type = T;
  Task() noexcept = default;
  static Task from_core(detail::FutureCore* core) noexcept {
    Task t;
    static_cast<TaskRef&>(t) = TaskRef(static_cast<detail::TaskCore*>(core));
    return t;
  }

  /// The value the coroutine returned (a move-only value is moved out: it can be taken once).
  /// Errors: InvalidStateError if the task is not done; CancelledError if it was cancelled; the
  /// exception the coroutine raised.
  T result() const {
    detail::require_done(core());
    if (core()->exception) detail::rethrow(core());
    if constexpr (!std::is_void_v<T>) {
      return detail::hand_out(*detail::promise_of<T>(core())->value());
    }
  }

  /// `fn(task)` is scheduled with call_soon when the task is done (at once if it is).
  CallbackId add_done_callback(std::function<void(Task)> fn) {
    auto* node = new detail::UserCallback<Task>(core(), std::move(fn));
    detail::add_done_waiter(core(), node);
    return reinterpret_cast<CallbackId>(node);
  }

  struct Awaiter : detail::FutureAwaiterBase {
    void await_suspend(std::coroutine_handle<> h) {
      detail::check_not_self(static_cast<detail::TaskCore*>(core), detail::current_task_core());
      detail::FutureAwaiterBase::await_suspend(h);
    }
    T await_resume() const {
      before_result();
      if constexpr (!std::is_void_v<T>) {
        return detail::hand_out(
            *detail::promise_of<T>(static_cast<detail::TaskCore*>(core))->value());
      }
    }
  };
  /// Waits for the task and returns its result. Cancellation: cancelling the awaiting task
  /// cancels this one (asyncio). Errors: the task's exception; CancelledError.
  Awaiter operator co_await() const noexcept { return Awaiter{{core()}}; }
};

struct TaskRef::Awaiter : detail::FutureAwaiterBase {
  void await_suspend(std::coroutine_handle<> h) {
    detail::check_not_self(static_cast<detail::TaskCore*>(core), detail::current_task_core());
    detail::FutureAwaiterBase::await_suspend(h);
  }
  void await_resume() const { before_result(); }
};
inline TaskRef::Awaiter TaskRef::operator co_await() const noexcept {
  return Awaiter{{core_}};
}

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, detail::CallSite site) {
  return create_task_named(std::move(coro), nullptr, site);
}

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, std::string name, detail::CallSite site) {
  return create_task_named(std::move(coro), &name, site);
}

template <class T>
Task<T> EventLoop::create_task_named(Coro<T> coro, std::string* name, detail::CallSite site) {
  if (!coro.valid()) throw ValueError("create_task: empty Coro");
  auto h = coro.release();
  detail::TaskCore* core = &h.promise();
  if (detail::start_task(this, core, name, site)) {
    Task<T> task = Task<T>::from_core(core);  // held while the eager step may finish it
    detail::eager_step(core);
    return task;
  }
  return Task<T>::from_core(core);
}

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, TaskOptions options, detail::CallSite site) {
  if (!coro.valid()) throw ValueError("create_task: empty Coro");
  auto h = coro.release();
  detail::TaskCore* core = &h.promise();
  const bool eager = detail::start_task(this, core, options, site);
  Task<T> task = Task<T>::from_core(core);  // held while the eager step may finish it
  if (eager) detail::eager_step(core);
  return task;
}

/// Schedules `coro` on the running loop. Errors: RuntimeError outside a running loop.
/// `site` is the caller's line, which debug mode's reports name (leave it defaulted).
template <class T>
Task<T> create_task(Coro<T> coro, detail::CallSite site = detail::CallSite::here()) {
  return get_running_loop().create_task(std::move(coro), site);
}
template <class T>
Task<T> create_task(Coro<T> coro, std::string name,
                    detail::CallSite site = detail::CallSite::here()) {
  return get_running_loop().create_task(std::move(coro), std::move(name), site);
}
/// The same with options: `create_task(coro, TaskOptions{.name = "x", .eager_start = true})`.
template <class T>
Task<T> create_task(Coro<T> coro, TaskOptions options,
                    detail::CallSite site = detail::CallSite::here()) {
  return get_running_loop().create_task(std::move(coro), std::move(options), site);
}

/// The task running now; nullopt in a plain callback. Errors: RuntimeError outside a running loop.
std::optional<TaskRef> current_task();
/// The running loop's tasks that are not done.
std::vector<TaskRef> all_tasks();

/// Suspends the current task for `delay`. sleep(0s) yields exactly one loop iteration.
/// Cancellation: the timer is withdrawn and CancelledError raised here; nothing is lost.
/// `site` is the caller's line, for call graphs (leave it defaulted).
inline Coro<void> sleep(Clock::duration delay, detail::CallSite site = detail::CallSite::here()) {
  if (delay <= Clock::duration::zero()) return Coro<void>::yield();  // inline: a yield is cheap
  return detail::sleep_for(delay, site);
}
/// asyncio.sleep(delay, result): sleeps, then returns `result`.
template <class T>
Coro<std::decay_t<T>> sleep(Clock::duration delay, T result,
                            detail::CallSite site = detail::CallSite::here()) {
  co_await sleep(delay, site);
  co_return std::move(result);
}

}  // namespace weave

namespace weave {

namespace detail {
template <class A>
struct is_coro : std::false_type {};
template <class T>
struct is_coro<Coro<T>> : std::true_type {};
}  // namespace detail

template <class A>
auto EventLoop::run_until_complete(A&& awaitable) {
  check_runnable();  // before a Coro is made a task, so that a refused run leaves nothing behind
  using D = std::decay_t<A>;
  if constexpr (detail::is_coro<D>::value) {
    auto task = create_task(std::forward<A>(awaitable));
    run_until_done(task.core());
    return task.result();
  } else {
    run_until_done(awaitable.core());
    return awaitable.result();
  }
}

}  // namespace weave

#include "weave/detail/bridge.hpp"
#include "weave/detail/combinators.hpp"

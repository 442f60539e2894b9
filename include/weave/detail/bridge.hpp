#pragma once
// The bridge between the loop and weave::concurrent: wrap_future, run_in_executor, to_thread and
// run_coroutine_threadsafe, after asyncio's futures._chain_future.
//
// Two futures are chained, one bound to a loop (weave::Future, not thread-safe) and one
// thread-safe (concurrent::Future). State flows from whichever completes to the other, and a
// cancellation flows back:
//   wrap_future:              concurrent --result--> loop      loop --cancel--> concurrent
//   run_coroutine_threadsafe: loop task --result--> concurrent  concurrent --cancel--> task
// Everything that touches the loop side runs on the loop thread: another thread only posts a
// callback through the loop's entry queue (call_soon_threadsafe), which wakes the loop at once.
//
// Lifetimes are the subtle part, because the other thread may finish after the loop side is
// gone (the awaiting task was cancelled, the loop closed or was destroyed). What a foreign thread
// holds or destroys is therefore never a loop object: it holds a shared link (WrapLink, CoroLink)
// with the loop's LoopLink, which refuses posts once the loop is closed, and a raw pointer to the
// loop-side future or task that only the loop thread reads, and that the loop side nulls when the
// future is freed or the task is done. A callback dropped because the loop is closed destroys
// nothing but the link.

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "weave/concurrent.hpp"
#include "weave/contextvars.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace weave {

namespace detail {

/// What a completing thread needs to reach a wrapped future.
struct WrapLink {
  LoopLink loop;               ///< set once, before the link is shared
  FutureCore* dest = nullptr;  ///< loop thread only: the wrapper, null once it is freed
  bool exclusive = false;      ///< nobody else sees the source: its outcome may be moved out
};

/// wrap_future's loop-side future: it carries its source, to cancel it, and nulls its link when
/// freed. Its done callback is a member, so that wrapping allocates no callback node.
template <class T>
struct WrappedFuture final : FutureImpl<T> {
  WrappedFuture(EventLoop* loop, concurrent::Future<T> src, std::shared_ptr<WrapLink> l)
      : FutureImpl<T>(loop, &destroy_wrapped),
        source(std::move(src)),
        link(std::move(l)),
        hook(this) {
    link->dest = this;
    this->done_waiters.push_back(&hook);
  }

  static void destroy_wrapped(FutureBox* b) noexcept {
    auto* self = static_cast<WrappedFuture*>(b);
    self->link->dest = nullptr;
    delete self;
  }

  /// asyncio's _call_check_cancel: a cancelled wrapper cancels its source. It runs as a done
  /// callback, so it holds a reference to the wrapper from its queueing until it ran.
  struct CancelHook final : UserCallbackBase {
    explicit CancelHook(FutureCore* owner) noexcept : UserCallbackBase(&run, &drop, owner) {}
    static void drop(UserCallbackBase*) noexcept {}
    static void run(CallbackNode* n) {
      auto* self = static_cast<WrappedFuture*>(static_cast<CancelHook*>(n)->owner);
      struct Release {
        FutureCore* f;
        ~Release() { release_any(f); }
      } release{self};
      if (self->cancelled()) self->source.cancel();
    }
  };

  concurrent::Future<T> source;
  std::shared_ptr<WrapLink> link;
  CancelHook hook;
};

/// Loop thread: copies a finished concurrent future into the wrapper (asyncio's
/// _copy_future_state), unless the wrapper is gone or already done (cancelled meanwhile).
template <class T>
void deliver(const WrapLink& link, const concurrent::Future<T>& src) {
  if (link.dest == nullptr || link.dest->done()) return;
  Future<T> dest = Future<T>::from_core(link.dest);
  if (src.cancelled()) {
    dest.cancel();
    return;
  }
  if (link.exclusive) {
    // run_in_executor's future: the outcome moves to the loop side (no copy), and the executor
    // thread that drops the state last does not free the exception a loop task may be reading.
    auto& state = static_cast<concurrent::detail::FutureState<T>&>(*src.state());
    if (std::exception_ptr e = state.take_exception()) {
      dest.set_exception(std::move(e));
    } else if constexpr (std::is_void_v<T>) {
      dest.set_result();
    } else {
      dest.set_result(state.take_value());
    }
    return;
  }
  if (std::exception_ptr e = src.exception(Clock::duration::zero())) {
    dest.set_exception(std::move(e));
  } else if constexpr (std::is_void_v<T>) {
    dest.set_result();
  } else {
    dest.set_result(concurrent::Future<T>(src).result(Clock::duration::zero()));
  }
}

/// wrap_future, and run_in_executor with `exclusive` (no one else holds `source`).
template <class T>
Future<T> wrap_future(concurrent::Future<T> source, EventLoop& loop, bool exclusive) {
  auto link = std::make_shared<WrapLink>();
  link->loop = loop_link(loop);
  link->exclusive = exclusive;
  Future<T> dest = Future<T>::from_core(new WrappedFuture<T>(&loop, source, link));
  source.add_done_callback([link = std::move(link)](concurrent::Future<T> done) {
    post_to_loop(link->loop, [link, done = std::move(done)] { deliver(*link, done); });
  });
  return dest;
}

}  // namespace detail

/// asyncio.wrap_future: a Future of `loop` that completes when `source` does, with its value or
/// its exception (same type), or cancelled. The result is delivered on the loop thread through
/// call_soon_threadsafe, whichever thread completes `source`.
/// Cancellation: cancelling the returned future (or a task awaiting it) cancels `source`; if
/// `source` is already running, that fails and its outcome is dropped when it arrives.
template <class T>
Future<T> wrap_future(concurrent::Future<T> source, EventLoop& loop) {
  return detail::wrap_future(std::move(source), loop, false);
}

/// wrap_future on the running loop. Errors: RuntimeError outside a running loop.
template <class T>
Future<T> wrap_future(concurrent::Future<T> source) {
  return wrap_future(std::move(source), get_running_loop());
}

/// A loop future is returned as it is, as asyncio does.
template <class T>
Future<T> wrap_future(Future<T> future) {
  return future;
}

namespace detail {
/// Submits `fn(args...)` to run in the caller's context (asyncio's to_thread and
/// run_in_executor do so). A plain function pointer may be bound for another process, which a
/// context cannot follow: it is wrapped only for a thread pool.
template <class Fn, class... Args>
auto submit_in_context(concurrent::Executor& executor, Fn&& fn, Args&&... args) {
  using R = concurrent::detail::call_result_t<Fn, Args...>;
  CtxHold context(ctx_capture());
  if (context.word != 0 && (!std::is_pointer_v<std::decay_t<Fn>> ||
                            dynamic_cast<concurrent::ThreadPoolExecutor*>(&executor) != nullptr)) {
    return executor.submit(
        [hold = std::move(context), f = std::forward<Fn>(fn)](auto&&... a) mutable -> R {
          ContextScope scope(&hold.word);
          return std::invoke(f, std::forward<decltype(a)>(a)...);
        },
        std::forward<Args>(args)...);
  }
  return executor.submit(std::forward<Fn>(fn), std::forward<Args>(args)...);
}
}  // namespace detail

template <class Fn, class... Args>
auto EventLoop::run_in_executor(std::nullptr_t, Fn&& fn, Args&&... args) {
  concurrent::Executor& executor = detail::default_executor(*this);
  return detail::wrap_future(
      detail::submit_in_context(executor, std::forward<Fn>(fn), std::forward<Args>(args)...), *this,
      true);
}

template <class Ex, class Fn, class... Args>
auto EventLoop::run_in_executor(Ex* executor, Fn&& fn, Args&&... args) {
  static_assert(std::derived_from<Ex, concurrent::Executor>,
                "run_in_executor: the executor must be a weave::concurrent::Executor");
  if (executor == nullptr) {
    return run_in_executor(nullptr, std::forward<Fn>(fn), std::forward<Args>(args)...);
  }
  if (is_closed()) throw RuntimeError("Event loop is closed");
  return detail::wrap_future(
      detail::submit_in_context(*executor, std::forward<Fn>(fn), std::forward<Args>(args)...),
      *this, true);
}

/// asyncio.to_thread: runs `fn(args...)` in the running loop's default executor (a
/// concurrent::ThreadPoolExecutor) and returns what it returns, while the loop goes on running
/// other tasks. `fn` and `args` are moved into the call, which runs when this is awaited.
/// Cancellation: the awaiting task stops waiting at once; a call not started yet is withdrawn,
/// a call already running finishes in its thread and its result is dropped.
/// Errors: the call's exception, with its type; RuntimeError after shutdown_default_executor().
/// With g++ 12, put a lambda with init-captures (`[p = std::move(p)] {...}`) in a variable
/// first: as a temporary inside a co_await expression, that compiler destroys it twice.
template <class F, class... Args>
Coro<concurrent::detail::call_result_t<F, Args...>> to_thread(F fn, Args... args) {
  using R = concurrent::detail::call_result_t<F, Args...>;
  Future<R> future = get_running_loop().run_in_executor(nullptr, std::move(fn), std::move(args)...);
  if constexpr (std::is_void_v<R>) {
    co_await future;
  } else {
    co_return co_await future;
  }
}

namespace detail {

/// What the thread that cancels a run_coroutine_threadsafe future needs to reach the task.
struct CoroLink {
  LoopLink loop;             ///< set once, before the link is shared
  TaskCore* task = nullptr;  ///< loop thread only: the task, null once it is done
};

/// Loop thread: copies a finished task into its concurrent future (asyncio's
/// _set_concurrent_future_state).
template <class T>
void settle(const Task<T>& task, const concurrent::Future<T>& result) {
  if (task.cancelled()) result.cancel();
  if (!result.set_running_or_notify_cancel()) return;
  TaskCore* core = task.core();
  if (core->exception) {
    // The task is private to the bridge and this is its last reader: its exception moves to the
    // concurrent future, so that freeing the task here never frees an exception another thread
    // is reading.
    core->flags |= fflag::kRetrieved;
    result.set_exception(std::exchange(core->exception, nullptr));
  } else if constexpr (std::is_void_v<T>) {
    result.set_result();
  } else {
    result.set_result(task.result());
  }
}

/// The callback run_coroutine_threadsafe posts: makes the coroutine a task of the loop and chains
/// it to the concurrent future. Dropped without running (the loop closed first), it fails the
/// future with RuntimeError instead of leaving its waiter blocked for ever.
template <class T>
class StartThreadsafe {
 public:
  StartThreadsafe(Coro<T> coro, concurrent::Future<T> result, std::shared_ptr<CoroLink> link)
      : coro_(std::move(coro)), result_(std::move(result)), link_(std::move(link)) {}
  StartThreadsafe(StartThreadsafe&&) noexcept = default;
  StartThreadsafe& operator=(StartThreadsafe&&) = delete;
  ~StartThreadsafe() {
    if (!coro_.valid()) return;  // ran, or moved from
    try {
      if (result_.set_running_or_notify_cancel()) {
        result_.set_exception(std::make_exception_ptr(
            RuntimeError("Event loop is closed: the coroutine was never started")));
      }
    } catch (...) {
      // The future was completed by someone else: nothing left to report.
    }
  }

  void operator()() {
    Task<T> task = get_running_loop().create_task(std::move(coro_));
    link_->task = task.core();
    task.add_done_callback([link = link_, result = result_](Task<T> t) {
      link->task = nullptr;
      settle(t, result);
    });
    result_.add_done_callback([link = link_](const concurrent::Future<T>& f) {
      if (!f.cancelled()) return;
      auto cancel = [link] {
        if (link->task != nullptr) task_cancel(link->task, {});
      };
      // Cancelled already when this is registered: at once, so that the body never runs.
      EventLoop* here = running_loop_or_null();
      if (here != nullptr && loop_link(*here) == link->loop) {
        cancel();
      } else {
        post_to_loop(link->loop, std::move(cancel));
      }
    });
  }

 private:
  Coro<T> coro_;
  concurrent::Future<T> result_;
  std::shared_ptr<CoroLink> link_;
};

}  // namespace detail

/// asyncio.run_coroutine_threadsafe: from any thread, runs `coro` as a task of `loop` (running in
/// another thread) and returns a thread-safe future of its result:
///   auto f = weave::run_coroutine_threadsafe(work(), loop);   // in a plain thread
///   int r = f.result(5s);
/// Cancellation: cancelling the returned future cancels the task (the coroutine sees
/// CancelledError at its await); the future is then cancelled.
/// Errors (of the future): the coroutine's exception, with its type; RuntimeError when the loop
/// is closed before the task could start. The call itself throws RuntimeError if `loop` is
/// closed already.
template <class T>
concurrent::Future<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop) {
  concurrent::Future<T> result;
  auto link = std::make_shared<detail::CoroLink>();
  link->loop = detail::loop_link(loop);
  loop.call_soon_threadsafe(detail::StartThreadsafe<T>(std::move(coro), result, std::move(link)));
  return result;
}

}  // namespace weave

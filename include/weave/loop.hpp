#pragma once
/// \file loop.hpp
/// EventLoop: asyncio's event loop, one per thread. It owns the ready queue (FIFO), the timers,
/// the thread-safe entry queue and the I/O backend (io_uring or epoll, chosen at run time).
///
/// Scheduling order is asyncio's: callbacks run FIFO; a callback scheduled while the ready queue
/// is being run waits for the next iteration; timers fire in deadline order, ties in scheduling
/// order. Only call_soon_threadsafe may be called from another thread.

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/detail/small_function.hpp"

namespace weave {

class EventLoop;
template <class T>
class Future;
template <class T>
class Task;

namespace detail {
class LoopImpl;
struct HandleNode;
}  // namespace detail

/// Identifies one add_done_callback registration, for remove_done_callback.
using CallbackId = std::uintptr_t;

/// A type-erased, cheap, copyable handle to any Task (asyncio's Task object, whatever its result).
/// It keeps the task's state readable after the task finished and after its loop stopped.
class TaskRef {
 public:
  TaskRef() noexcept = default;
  explicit TaskRef(detail::TaskCore* core) noexcept : core_(core) {
    if (core_ != nullptr) ++core_->refs;
  }
  TaskRef(const TaskRef& o) noexcept : TaskRef(o.core_) {}
  TaskRef(TaskRef&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  TaskRef& operator=(TaskRef o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~TaskRef() {
    if (core_ != nullptr) detail::task_release(core_);
  }
  static TaskRef from_core(detail::FutureCore* core) noexcept {
    return TaskRef(static_cast<detail::TaskCore*>(core));
  }

  bool done() const noexcept { return core_->done(); }
  bool cancelled() const noexcept { return core_->cancelled(); }
  /// Asks the task to cancel: its current await raises CancelledError(msg). False if done, or
  /// if its loop was destroyed first (it can never run again).
  bool cancel(std::string_view msg = {}) { return detail::task_cancel(core_, msg); }
  /// Pending cancellation requests (asyncio's cancelling()).
  int cancelling() const noexcept { return static_cast<int>(core_->cancel_requests); }
  /// Withdraws one cancellation request; returns the remaining count.
  int uncancel() noexcept;
  std::string get_name() const;
  void set_name(std::string name);
  /// The exception the task ended with (nullptr if none). Throws CancelledError if cancelled,
  /// InvalidStateError if not done.
  std::exception_ptr exception() const;
  /// Rethrows the task's exception, or returns. Throws InvalidStateError if not done.
  void result() const;
  /// `fn(TaskRef)` is scheduled with call_soon when the task is done (at once if it is).
  CallbackId add_done_callback(std::function<void(TaskRef)> fn);
  std::size_t remove_done_callback(CallbackId id);
  EventLoop& get_loop() const noexcept { return *core_->loop(); }

  explicit operator bool() const noexcept { return core_ != nullptr; }
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.core_ == b.core_; }
  detail::TaskCore* core() const noexcept { return core_; }

  struct Awaiter;
  /// Waits for the task; rethrows its exception. Cancelling the awaiting task cancels this one.
  Awaiter operator co_await() const noexcept;

 private:
  detail::TaskCore* core_ = nullptr;
};

/// asyncio's exception-handler context dict, as a struct.
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;  ///< may be null
  std::optional<TaskRef> task;   ///< the task concerned, if any
};
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

/// A callback scheduled with call_soon; cancel() before it runs and it never runs.
/// A Handle must not be used after its loop is destroyed.
class Handle {
 public:
  Handle() noexcept = default;
  Handle(detail::HandleNode* node, std::uint32_t generation) noexcept
      : node_(node), generation_(generation) {}
  void cancel() noexcept;
  bool cancelled() const noexcept;

 protected:
  detail::HandleNode* node_ = nullptr;
  std::uint32_t generation_ = 0;
  bool cancelled_ = false;
};

/// A callback scheduled with call_later/call_at.
class TimerHandle : public Handle {
 public:
  TimerHandle() noexcept = default;
  TimerHandle(detail::HandleNode* node, std::uint32_t generation, Clock::time_point when) noexcept
      : Handle(node, generation), when_(when) {}
  Clock::time_point when() const noexcept { return when_; }

 private:
  Clock::time_point when_{};
};

class EventLoop {
 public:
  /// A new loop on the backend that WEAVE_BACKEND names (epoll|uring), or the best available.
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until the awaitable (Coro, Task or Future) is done; returns its result or rethrows.
  template <class A>
  auto run_until_complete(A&& awaitable);
  /// Runs until stop() is called.
  void run_forever();
  /// Stops run_forever() after the current iteration.
  void stop() noexcept;
  /// Closes the loop: pending callbacks are dropped, the backend is released. Not while running.
  void close();
  bool is_running() const noexcept;
  bool is_closed() const noexcept;
  /// The loop's clock (asyncio's loop.time()).
  Clock::time_point time() const noexcept { return Clock::now(); }

  Handle call_soon(detail::SmallFunction fn);
  TimerHandle call_later(Clock::duration delay, detail::SmallFunction fn);
  TimerHandle call_at(Clock::time_point when, detail::SmallFunction fn);
  /// The one member safe from any thread; wakes the loop at once if it is blocked in its poller.
  void call_soon_threadsafe(std::function<void()> fn);

  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name = {});
  template <class T = void>
  Future<T> create_future();

  void set_exception_handler(ExceptionHandler handler);
  ExceptionHandler get_exception_handler() const;
  void call_exception_handler(const ExceptionContext& context) noexcept;
  void default_exception_handler(const ExceptionContext& context) noexcept;

  /// Debug mode: thread checks on non-thread-safe calls and slow-callback reports.
  void set_debug(bool enabled) noexcept;
  bool get_debug() const noexcept;
  /// In debug mode, a callback or task step that runs longer than this is reported.
  Clock::duration slow_callback_duration = std::chrono::milliseconds(100);

  /// Waits for the default executor's work to finish and joins its threads (asyncio's
  /// loop.shutdown_default_executor); run() calls it. Safe to call when none was started.
  void shutdown_default_executor();

  /// "epoll" or "io_uring".
  const char* backend_name() const noexcept;
  detail::LoopImpl& impl() noexcept { return *impl_; }

 private:
  /// RuntimeError unless this loop could start running now (not closed, no loop running).
  void check_runnable() const;
  void run_until_done(detail::FutureCore* f);
  std::unique_ptr<detail::LoopImpl> impl_;
};

/// The loop running in this thread; throws RuntimeError when none is.
EventLoop& get_running_loop();

}  // namespace weave

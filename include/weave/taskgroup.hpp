#pragma once
/// \file taskgroup.hpp
/// TaskGroup, after asyncio.taskgroups. C++ has no `async with`, so the group is entered by
/// task_group(body): the body starts children with tg.create_task(); the group returns once every
/// child has finished. The first child failure cancels the other children and the body; all
/// failures surface together as ExceptionGroup.
///
///   co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
///     tg.create_task(a()); tg.create_task(b()); co_return; });

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "weave/task.hpp"

namespace weave {

class TaskGroup {
 public:
  TaskGroup() = default;
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Starts a child. Errors: RuntimeError if the group was not entered, is finished, or is
  /// shutting down after a failure.
  template <class T>
  Task<T> create_task(Coro<T> coro, detail::CallSite site = detail::CallSite::here()) {
    check_open(coro);
    Task<T> task = get_running_loop().create_task(std::move(coro), site);
    track(task);
    return task;
  }
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name,
                      detail::CallSite site = detail::CallSite::here()) {
    check_open(coro);
    Task<T> task = get_running_loop().create_task(std::move(coro), std::move(name), site);
    track(task);
    return task;
  }
  /// The same with create_task's options (name, context, eager_start). An eager child that
  /// finishes in its first step is accounted at once, as asyncio 3.12's TaskGroup does.
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options,
                      detail::CallSite site = detail::CallSite::here()) {
    check_open(coro);
    Task<T> task = get_running_loop().create_task(std::move(coro), std::move(options), site);
    track(task);
    return task;
  }

  /// Used by task_group(): asyncio's __aenter__ and __aexit__.
  void enter(const detail::CallSite* site = nullptr);
  Coro<void> exit(std::exception_ptr body_error);

 private:
  void check_open() const;
  /// check_open, closing `coro` first when it throws, as asyncio's TaskGroup closes the
  /// coroutine it refuses (so that it is not reported as never awaited).
  template <class T>
  void check_open(Coro<T>& coro) const {
    try {
      check_open();
    } catch (...) {
      if (coro.valid()) coro.release().destroy();
      throw;
    }
  }
  void track(const TaskRef& task);
  void on_task_done(const TaskRef& task);
  void abort();

  bool entered_ = false;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  const detail::CallSite* site_ = nullptr;  ///< task_group()'s caller, for call graphs
  std::optional<TaskRef> parent_;
  std::vector<TaskRef> tasks_;  ///< children not yet done
  std::vector<std::exception_ptr> errors_;
  std::optional<Future<void>> on_completed_;
};

/// Runs `body(tg)` inside a new TaskGroup and waits for every child. `body` (a lambda, often a
/// capturing coroutine lambda) is kept alive in this coroutine's frame until it finishes.
/// Errors: ExceptionGroup with every child failure (and the body's, if it failed);
/// CancelledError when cancelled from outside.
///
/// g++ 12 destroys a temporary closure with non-trivially destructible captures twice when it
/// sits inside a co_await expression (a compiler bug; clang and g++ 13 are right). With g++ 12,
/// capture by reference in `co_await task_group([&](...) {...})`, or name the lambda first.
///
/// `site` is the caller's line, for call graphs (leave it defaulted).
template <class F>
Coro<void> task_group(F body, detail::CallSite site = detail::CallSite::here()) {
  TaskGroup tg;
  tg.enter(&site);
  std::exception_ptr body_error;
  try {
    co_await body(tg);
  } catch (...) {
    body_error = std::current_exception();
  }
  co_await tg.exit(body_error);
}

}  // namespace weave

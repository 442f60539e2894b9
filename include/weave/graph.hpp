#pragma once
/// \file graph.hpp
/// Call graphs of tasks, after asyncio.graph (Python 3.14): capture_call_graph,
/// format_call_graph, print_call_graph, and TaskRef::get_stack()/print_stack().
///
/// A task's call stack is its chain of suspended coroutine frames, innermost first, each named by
/// its function (demangled). A frame shows a file and line where weave captured one: the line of
/// the weave call the task is suspended in (sleep, a queue's get, wait_for, shield, task_group,
/// ...) belongs to the innermost frame outside weave, and print_call_graph's own line to its
/// caller. "Awaited by" lists who waits for the task: a task awaiting it directly, a gather,
/// wait or as_completed over it, the parent of a TaskGroup child, shield's outer future.
///
///   * Task(name='test', id=0x55d0c2a3e0c0)
///     + Call stack:
///     |   File 'main.cpp', line 4, in async test()
///     + Awaited by:
///         * Task(name='Task-1', id=0x55d0c2a3d9a0)
///           + Call stack:
///           |   in async weave::TaskGroup::exit(std::__exception_ptr::exception_ptr)
///           |   in async weave::task_group<main()::{lambda(weave::TaskGroup&)#1}>(...)
///           |   File 'main.cpp', line 8, in async main()
///
/// A frame with no captured location prints as "|   in async name()" (asyncio always has one).

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "weave/future.hpp"
#include "weave/task.hpp"

namespace weave {

/// One coroutine frame of a call stack (asyncio's FrameCallGraphEntry).
struct FrameCallGraphEntry {
  std::string name;             ///< the coroutine's function, demangled
  const char* file = nullptr;   ///< where a location was captured, else nullptr
  unsigned line = 0;            ///< with `file`
  const void* frame = nullptr;  ///< the coroutine frame's address
};

/// A task or future, its call stack and who awaits it (asyncio's FutureCallGraph).
struct FutureCallGraph {
  const void* future = nullptr;                 ///< the task or future (its id=0x... in the text)
  std::optional<TaskRef> task;                  ///< set when it is a task
  std::vector<FrameCallGraphEntry> call_stack;  ///< innermost frame first
  std::vector<FutureCallGraph> awaited_by;
};

namespace detail {
FutureCallGraph capture_future_graph(FutureCore* f);
}  // namespace detail

/// The current task's graph, its stack starting at the caller's frame (asyncio walks the current
/// frame stack; weave keeps the running frame in the task); nullopt outside a task. Errors:
/// RuntimeError outside a running loop.
std::optional<FutureCallGraph> capture_call_graph(detail::CallSite site = detail::CallSite::here());
/// The graph of `task` (the current task: as above).
FutureCallGraph capture_call_graph(const TaskRef& task,
                                   detail::CallSite site = detail::CallSite::here());
/// The graph of a future: no call stack, who awaits it.
template <class T>
FutureCallGraph capture_call_graph(const Future<T>& future) {
  return detail::capture_future_graph(future.core());
}

/// asyncio's text: "* Task(name=..., id=0x...)", "+ Call stack:", "|   File '...', line N, in
/// async f()", "+ Awaited by:", each level indented by four spaces; no trailing newline.
std::string format_call_graph(const FutureCallGraph& graph);
/// The current task's graph as text; "" outside a task.
std::string format_call_graph(detail::CallSite site = detail::CallSite::here());
std::string format_call_graph(const TaskRef& task,
                              detail::CallSite site = detail::CallSite::here());

/// Prints the current task's graph, and a newline, to `file`; nothing outside a task.
void print_call_graph(std::FILE* file = stdout, detail::CallSite site = detail::CallSite::here());
void print_call_graph(const TaskRef& task, std::FILE* file = stdout,
                      detail::CallSite site = detail::CallSite::here());

}  // namespace weave

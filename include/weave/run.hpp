#pragma once
/// \file run.hpp
/// weave::run and Runner: asyncio.run / asyncio.Runner.

#include <optional>
#include <type_traits>
#include <utility>

#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace weave {

struct RunOptions {
  /// Debug mode for the new loop (also turned on by WEAVE_DEBUG=1).
  std::optional<bool> debug;
};

/// asyncio.Runner: several run() calls on one loop, then close().
class Runner {
 public:
  explicit Runner(RunOptions opts = {});
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  /// Runs `coro` as the main task until it completes; returns its result or rethrows.
  ///
  /// Ctrl-C, as asyncio.Runner: when called in the main thread while SIGINT has its default
  /// disposition, run() installs a SIGINT handler for its duration. The first SIGINT cancels
  /// the main task, which sees CancelledError at its current await; if the cancellation ends
  /// the task, run() raises KeyboardInterrupt (a CancelledError) instead of CancelledError. A
  /// second SIGINT (or one after the main task is done) puts the default disposition back and
  /// re-raises the signal at once, even while the main task never yields: the process ends by
  /// SIGINT, as a Python program does on an uncaught KeyboardInterrupt. The previous disposition
  /// is restored when run() returns, unless the program installed another one meanwhile.
  /// Errors: RuntimeError when called from a running loop or after close(); KeyboardInterrupt.
  template <class T>
  T run(Coro<T> coro) {
    Task<T> task = prepare(std::move(coro));
    run_main(task);
    return task.result();
  }
  /// Cancels the tasks left over, shuts the default executor down and closes the loop.
  void close();
  EventLoop& get_loop();

 private:
  template <class T>
  Task<T> prepare(Coro<T> coro) {
    check_usable();
    return loop_->create_task(std::move(coro));
  }
  void check_usable();
  void run_main(const TaskRef& task);

  RunOptions opts_;
  std::optional<EventLoop> loop_;
  bool closed_ = false;
};

/// asyncio.run: a new loop runs `main`; then the leftover tasks are cancelled, the default
/// executor is shut down and the loop closed. Errors: whatever `main` raises; RuntimeError when
/// called from a running loop.
template <class T>
T run(Coro<T> main, RunOptions opts = {}) {
  Runner runner(opts);
  if constexpr (std::is_void_v<T>) {
    runner.run(std::move(main));
  } else {
    return runner.run(std::move(main));
  }
}

}  // namespace weave

#pragma once
/// \file trace.hpp
/// Looking at a running program: task statistics (EventLoop::stats()), the stall watchdog of
/// debug mode, and timelines in Chrome's trace-event format, which ui.perfetto.dev opens.
///
/// Everything here is off by default and costs one predictable branch per loop step while off.
///   loop.set_stats(true);  ...  weave::LoopStats s = loop.stats();
///   weave::trace::start({.path = "out.json"});  ...  weave::trace::stop();   // or
///   WEAVE_TRACE=FILE

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "weave/clock.hpp"

namespace weave {

/// One task's figures since statistics were switched on (or since it was created).
struct TaskStats {
  std::uint32_t id = 0;
  std::string name;
  Clock::duration busy{};       ///< running its steps
  Clock::duration scheduled{};  ///< ready, waiting in the ready queue for its step
  Clock::duration idle{};       ///< suspended, waiting for something to wake it
  std::uint64_t steps = 0;
  std::uint64_t wakeups = 0;  ///< wake-ups by what it awaited (a timer, a future, I/O)
};

/// A loop's figures since statistics were switched on.
struct LoopStats {
  bool enabled = false;
  std::uint64_t iterations = 0;
  std::uint64_t task_steps = 0;
  std::uint64_t callbacks = 0;
  std::size_t ready_depth = 0;      ///< nodes ready at the last iteration
  std::size_t ready_depth_max = 0;  ///< the most nodes ready at one iteration
  std::size_t io_watches = 0;       ///< fds watched and transports/servers open, now
  Clock::duration lag{};            ///< how late the last due timer ran
  Clock::duration lag_max{};        ///< the latest a due timer ran
  std::vector<TaskStats> tasks;     ///< the pending tasks, oldest first
};

/// What the stall watchdog saw: a step that still blocks its loop.
struct StallReport {
  std::string task;                    ///< the task's name, or "a callback"
  std::string await_chain;             ///< the task's await chain, one frame a line
  Clock::duration wall{};              ///< since the step began
  Clock::duration cpu{};               ///< CPU time of the loop thread since the step began
  std::vector<std::string> backtrace;  ///< the loop thread's native stack, innermost first
  std::uint64_t suppressed = 0;        ///< stalls not reported since the last report (rate limit)
  std::string text;                    ///< all of it, formatted
};

/// The watchdog's reports go to `fn` (called on the watchdog's thread, while the loop is
/// blocked: it must not touch the loop). The default writes StallReport::text to stderr. An
/// empty function restores the default.
void set_stall_reporter(std::function<void(const StallReport&)> fn);
/// At most `count` stall reports per `window` (default 10 a minute); the ones over the limit
/// are counted, and the next report says how many.
void set_stall_rate_limit(std::uint32_t count, Clock::duration window);
/// Stalls reported and suppressed since the program started.
struct StallCounts {
  std::uint64_t reported = 0;
  std::uint64_t suppressed = 0;
};
StallCounts stall_counts();

namespace trace {

struct Options {
  std::string path;                       ///< where stop() (or a flight dump) writes
  std::size_t memory_budget = 64u << 20;  ///< bytes of event buffers, all threads together
  std::size_t thread_buffer = 8u << 20;   ///< bytes of one thread's buffer
  bool flight_recorder = false;           ///< keep the newest events, not the oldest
  /// Flight recorder: what a dump writes (the last this long).
  Clock::duration flight_window = std::chrono::seconds(5);
  bool dump_on_stall = true;  ///< flight recorder: the watchdog's stall report writes a dump
  bool dump_on_crash = true;  ///< flight recorder: SIGSEGV/SIGBUS/SIGFPE/SIGABRT write a dump
  int dump_signal = 0;        ///< flight recorder: this signal (e.g. SIGUSR2) writes a dump
};

/// Starts recording in every thread (task steps, task lifetimes, wake-ups as flows, callbacks
/// and counters). Errors: RuntimeError when a trace is already being recorded.
void start(Options options);
/// Stops recording and writes the trace to Options::path. Returns the events written.
std::size_t stop();
bool active() noexcept;
/// Writes what the buffers hold now (the flight window in flight-recorder mode) to `path`
/// (Options::path when empty), without stopping. Returns the events written.
std::size_t dump(const std::string& path = {});
/// Bytes the event buffers take now (bounded by Options::memory_budget).
std::size_t memory_used() noexcept;
/// Events that did not fit (a full buffer outside flight mode, or no budget left for a thread).
std::uint64_t dropped() noexcept;

}  // namespace trace
}  // namespace weave

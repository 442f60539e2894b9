#pragma once
// The hooks the core calls while debug mode, statistics or tracing is on (LoopImpl::hooks is
// non-zero), and the state they keep per loop. With every switch off the core makes none of
// these calls: each hook site is one predictable branch on LoopImpl::hooks.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "weave/clock.hpp"
#include "weave/detail/future_core.hpp"
#include "weave/trace.hpp"

namespace weave::detail {
class LoopImpl;
}

namespace weave::detail::dbg {

/// Bits of LoopImpl::hooks.
inline constexpr std::uint8_t kDebug = 1;
inline constexpr std::uint8_t kStats = 2;
inline constexpr std::uint8_t kTrace = 4;

/// kTrace while a trace is recorded (trace.cpp); read once per loop iteration, inline, so that
/// the check costs a load and no call when nothing is on.
extern std::atomic<std::uint8_t> g_trace_bit;
inline std::uint8_t trace_bit() noexcept {
  return g_trace_bit.load(std::memory_order_relaxed);
}
/// Time stamps of the hooks, in ticks: the TSC where the kernel keeps its own clock on it (one
/// instruction, and a few ns where CLOCK_MONOTONIC costs tens in a VM: statistics read one per
/// step), else Clock's nanoseconds. The choice is made once, by init_ticks(), which every way of
/// switching a hook on calls before its first stamp.
extern std::atomic<bool> g_use_tsc;
void init_ticks() noexcept;
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  if (g_use_tsc.load(std::memory_order_relaxed)) return __rdtsc();
#endif
  return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
}
/// A difference of two stamps as a duration.
Clock::duration ticks_duration(std::uint64_t delta) noexcept;
/// Nanoseconds per tick (1 without the TSC); the first call may take a millisecond.
double ns_per_tick() noexcept;
/// A stamp as nanoseconds of Clock's epoch, at `rate` (ns_per_tick()).
std::uint64_t ticks_to_ns(std::uint64_t stamp, double rate) noexcept;
/// For an outside reader (weave ps) converting the target's stamps: a stamp and the Clock
/// reading taken with it, and whether stamps are TSC ticks.
struct TickBase {
  std::uint64_t tick0 = 0;
  std::uint64_t ns0 = 0;
  std::uint64_t tsc = 0;  ///< 1: ticks are the TSC; 0: they are ns
};
extern TickBase g_tick_base;

/// WEAVE_DEBUG=1 in the environment; WEAVE_TRACE starts a trace on the first call.
bool env_debug() noexcept;
/// WEAVE_STATS=1: statistics on in every loop made.
bool env_stats() noexcept;
void env_trace() noexcept;

struct LoopDebug;  // per loop: stats, the watchdog's slot (stats.cpp)
void destroy(LoopDebug* d) noexcept;
struct LoopDebugDeleter {
  void operator()(LoopDebug* d) const noexcept { destroy(d); }
};
using LoopDebugPtr = std::unique_ptr<LoopDebug, LoopDebugDeleter>;

/// Around one node of the ready queue (a task step or a callback).
struct StepToken {
  std::uint64_t start = 0;  ///< ticks()
  std::int64_t cpu_start_ns = 0;
  TaskCore* task = nullptr;  ///< the task whose step this is (not a sleep's timer)
  bool held = false;         ///< `task` is held by a reference until after_node
  std::uint32_t id = 0;      ///< the task's id, for the trace (it may be gone by after_node)
  std::uint64_t flow = 0;    ///< trace: the flow of the wake-up this step ends
  const std::string* name = nullptr;  ///< trace: the task's name, when it has one
};
void before_node(LoopImpl& l, Node* n, StepToken& tok) noexcept;
void after_node(LoopImpl& l, StepToken& tok) noexcept;
/// run_forever begins: the time since the last step is no step's.
void on_run(LoopImpl& l) noexcept;
/// Once per iteration, before the batch runs; `polled`: the backend was polled since the last
/// batch (it may have blocked: the next step's start is read afresh).
void on_iteration(LoopImpl& l, std::size_t ready_depth, Clock::duration lag, bool polled) noexcept;
void on_task_created(LoopImpl& l, TaskCore* t) noexcept;
void on_task_done(LoopImpl& l, TaskCore* t) noexcept;
void on_wake(LoopImpl& l, TaskCore* t) noexcept;
/// The loop is about to block with no timeout: warns when nothing could ever wake it.
void on_block_forever(LoopImpl& l) noexcept;
/// Loop teardown reports (debug mode, before the loop's state goes): unclosed loop, transports,
/// servers; each pending task.
void on_loop_destroyed(LoopImpl& l, bool closed) noexcept;
void on_task_destroyed_pending(LoopImpl& l, TaskCore* t) noexcept;

/// A CallSite's file (nullptr when none was captured) and line: the one place src/debug reads
/// a CallSite's fields.
inline const char* site_file(const CallSite& s) noexcept {
  return s.file();
}
inline unsigned site_line(const CallSite& s) noexcept {
  return s.line();
}
/// "File 'f', line N" of a captured site.
inline std::string site_text(const CallSite& s) {
  return "File '" + std::string(site_file(s)) + "', line " + std::to_string(site_line(s));
}

/// The task's name and what it waits on, for reports (the call-graph formatter replaces it).
std::string task_name(const TaskCore* t);
std::string await_chain(const TaskCore* t);
/// "\nTask created at File 'f', line N" when debug mode kept the task's create_task call;
/// empty otherwise.
std::string created_at(const FutureCore* f);

// Trace records (trace.cpp), stamped in ticks. A task's event with no name (`name` nullptr) is
// written as "Task-ID".
void trace_slice(const char* cat, std::uint32_t task_id, const std::string* name, std::uint64_t ts,
                 std::uint64_t end, std::uint64_t flow_in) noexcept;
void trace_task_begin(std::uint32_t id, const std::string* name, std::uint64_t ts) noexcept;
void trace_task_end(std::uint32_t id, const std::string* name, std::uint64_t ts) noexcept;
void trace_flow_start(std::uint64_t flow, std::uint64_t ts) noexcept;
void trace_counter(const char* name, std::int64_t value, std::uint64_t ts) noexcept;
/// An I/O wait of a task on the timeline: an async slice (category "io") named "OP fd N", from
/// the task's suspension to its wake-up. Callers test LoopImpl::hooks & kTrace first.
struct IoWaitTrace;
void trace_io_begin(IoWaitTrace& w, const char* op, int fd) noexcept;
void trace_io_end_recorded(IoWaitTrace& w) noexcept;
/// An I/O wait's slice, in the waiting frame: small (every idle connection's read holds one)
/// and, with no trace on, never a call.
struct IoWaitTrace {
  IoWaitTrace() = default;
  IoWaitTrace(const IoWaitTrace&) = delete;
  IoWaitTrace& operator=(const IoWaitTrace&) = delete;
  ~IoWaitTrace() { end(); }  // a wait cut short by a cancellation ends too
  void end() noexcept {
    if (id != 0) trace_io_end_recorded(*this);
  }
  std::uint64_t id = 0;  ///< 0: not recorded
  const char* op = nullptr;
  int fd = -1;
};
inline void trace_io_end(IoWaitTrace& w) noexcept {
  w.end();
}
/// Flight recorder: the watchdog saw a stall.
void trace_stall_dump() noexcept;

// The watchdog (watchdog.cpp): one thread per debug-mode loop thread, started on first use.
struct Watchdog;
Watchdog* watchdog_start(LoopImpl& l);
void watchdog_stop(Watchdog* w) noexcept;
void watchdog_step_begin(Watchdog* w, const TaskCore* t, std::int64_t cpu_ns) noexcept;
void watchdog_step_end(Watchdog* w) noexcept;
std::int64_t thread_cpu_ns() noexcept;

}  // namespace weave::detail::dbg

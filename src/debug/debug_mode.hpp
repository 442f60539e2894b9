#pragma once
// The hooks the core calls while debug mode, statistics or tracing is on (LoopImpl::hooks is
// non-zero), and the state they keep per loop. With every switch off the core makes none of
// these calls: each hook site is one predictable branch on LoopImpl::hooks.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

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
  Clock::time_point start;
  std::int64_t cpu_start_ns = 0;
  TaskCore* task = nullptr;  ///< held by a reference for the step's length
  std::uint64_t trace_ts = 0;
};
void before_node(LoopImpl& l, Node* n, StepToken& tok) noexcept;
void after_node(LoopImpl& l, StepToken& tok) noexcept;
/// Once per iteration, before the batch runs.
void on_iteration(LoopImpl& l, std::size_t ready_depth, Clock::duration lag) noexcept;
void on_task_created(LoopImpl& l, TaskCore* t) noexcept;
void on_task_done(LoopImpl& l, TaskCore* t) noexcept;
void on_wake(LoopImpl& l, TaskCore* t) noexcept;
/// The loop is about to block with no timeout: warns when nothing could ever wake it.
void on_block_forever(LoopImpl& l) noexcept;
/// Loop teardown reports (debug mode, before the loop's state goes): unclosed loop, transports,
/// servers; each pending task.
void on_loop_destroyed(LoopImpl& l, bool closed) noexcept;
void on_task_destroyed_pending(LoopImpl& l, TaskCore* t) noexcept;

/// The task's name and what it waits on, for reports (the call-graph formatter replaces it).
std::string task_name(const TaskCore* t);
std::string await_chain(const TaskCore* t);
/// "\nTask created at File 'f', line N" when debug mode kept the task's create_task call;
/// empty otherwise.
std::string created_at(const FutureCore* f);

// Trace records (trace.cpp); each checks that a trace is on.
std::uint64_t trace_now() noexcept;
void trace_slice(const char* cat, const std::string& name, std::uint64_t ts, std::uint64_t end,
                 std::uint64_t flow_in) noexcept;
void trace_task_begin(std::uint32_t id, const std::string& name) noexcept;
void trace_task_end(std::uint32_t id, const std::string& name) noexcept;
void trace_flow_start(std::uint64_t flow) noexcept;
void trace_counter(const char* name, std::int64_t value) noexcept;
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

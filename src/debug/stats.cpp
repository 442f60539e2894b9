// Per-loop state of src/debug and the hooks around each node: task statistics, the debug-mode
// reports (slow step, pending task destroyed, unclosed loop/transports/servers, a loop about to
// block forever) and the feeding of trace.cpp and watchdog.cpp.

#include <algorithm>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "core/loop_impl.hpp"
#include "debug/debug_mode.hpp"
#include "debug/symbols.hpp"
#include "weave/task.hpp"

namespace weave::detail::dbg {

namespace {
struct TaskRec {
  Clock::time_point ready_at{};  ///< queued for its next step since
  Clock::time_point last_end{};  ///< its last step ended (or it was created)
  bool waiting = false;          ///< suspended since last_end, not yet woken
  Clock::duration busy{}, scheduled{}, idle{};
  std::uint64_t steps = 0, wakeups = 0;
  std::uint64_t flow_in = 0;  ///< trace: the flow of the wake-up its next step ends
};
std::atomic<std::uint64_t> g_flows{0};
}  // namespace

struct LoopDebug {
  std::unordered_map<const TaskCore*, TaskRec> tasks;
  LoopStats totals;
  Watchdog* watchdog = nullptr;
  bool warned_forever = false;
};

void destroy(LoopDebug* d) noexcept {
  if (d->watchdog != nullptr) watchdog_stop(d->watchdog);
  delete d;
}

namespace {
LoopDebug& state(LoopImpl& l) {
  if (!l.dbg_state) l.dbg_state.reset(new LoopDebug);
  return *l.dbg_state;
}
bool tracks_tasks(const LoopImpl& l) noexcept {
  return (l.hooks & (kStats | kTrace)) != 0;
}
TaskRec& rec(LoopDebug& d, const TaskCore* t, Clock::time_point now) {
  auto [it, fresh] = d.tasks.try_emplace(t);
  if (fresh) it->second.ready_at = it->second.last_end = now;
  return it->second;
}
const char* wait_name(WaitKind k) noexcept {
  switch (k) {
    case WaitKind::None:
      return "nothing (ready, or a yield)";
    case WaitKind::List:
      return "a waiter list (a lock, an event, a queue, a condition)";
    case WaitKind::Timer:
      return "a timer (sleep)";
    case WaitKind::TimerFired:
      return "a timer that fired";
    case WaitKind::Future:
      return "a future";
    case WaitKind::Custom:
      return "an I/O or combinator wait";
  }
  return "?";
}
}  // namespace

std::string task_name(const TaskCore* t) {
  const FutureExtras* extras = t->find_extras();
  if (extras != nullptr && !extras->name.empty()) return extras->name;
  return "Task-" + std::to_string(t->id);
}

std::string created_at(const FutureCore* f) {
  const FutureExtras* extras = f->find_extras();
  if (extras == nullptr || extras->created_at.file() == nullptr) return {};
  return "\nTask created at File '" + std::string(extras->created_at.file()) + "', line " +
         std::to_string(extras->created_at.line());
}

std::string await_chain(const TaskCore* t) {
  std::string out;
  std::unordered_set<const FutureCore*> seen;
  const TaskCore* task = t;
  bool cycle = false;
  while (task != nullptr) {
    if (!seen.insert(task).second) {
      cycle = true;
      break;
    }
    if (!out.empty()) out += "\n";
    out += "  Task '" + task_name(task) + "' (id " + std::to_string(task->id) + ")";
    if (task->done()) {
      out += " done";
      break;
    }
    const auto kind = static_cast<WaitKind>(task->wait_kind);
    out += " awaits " + std::string(wait_name(kind));
    if (kind != WaitKind::None && task->wait_site != nullptr &&
        task->wait_site->file() != nullptr) {
      out += " at File '" + std::string(task->wait_site->file()) + "', line " +
             std::to_string(task->wait_site->line());
    }
    // A task awaited is followed; a plain future ends the chain.
    const auto* next =
        kind == WaitKind::Future ? static_cast<const FutureCore*>(task->waiting_on) : nullptr;
    task = next != nullptr && next->is_task() ? static_cast<const TaskCore*>(next) : nullptr;
  }
  if (cycle) out += "\n  (a cycle)";
  return out;
}

void before_node(LoopImpl& l, Node* n, StepToken& tok) noexcept {
  LoopDebug& d = state(l);
  d.warned_forever = false;
  tok.start = Clock::now();
  if (n->kind == NodeKind::Task) {
    auto* t = static_cast<TaskCore*>(n);
    // The wake-up of a sleep is the timer's callback, not a step of the task.
    if (static_cast<WaitKind>(t->wait_kind) != WaitKind::TimerFired) {
      tok.task = t;
      ++t->refs;  // the step may finish the task: its state stays readable until after_node
    }
  }
  if ((l.hooks & kDebug) != 0) {
    if (d.watchdog == nullptr) d.watchdog = watchdog_start(l);
    tok.cpu_start_ns = thread_cpu_ns();
    watchdog_step_begin(d.watchdog, tok.task, tok.cpu_start_ns);
  }
  if (tok.task != nullptr && (l.hooks & kStats) != 0) {
    TaskRec& r = rec(d, tok.task, tok.start);
    r.scheduled += tok.start - r.ready_at;
  }
}

void after_node(LoopImpl& l, StepToken& tok) noexcept {
  LoopDebug& d = state(l);
  const Clock::time_point end = Clock::now();
  const Clock::duration took = end - tok.start;
  TaskCore* t = tok.task;
  if ((l.hooks & kDebug) != 0) {
    if (d.watchdog != nullptr) watchdog_step_end(d.watchdog);
    if (took >= l.owner.slow_callback_duration) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.3f", std::chrono::duration<double>(took).count());
      std::string what = t != nullptr ? "<Task name='" + task_name(t) + "'>" : "a callback";
      ExceptionContext ctx{"Executing " + what + " took " + secs + " seconds", nullptr, {}};
      if (t != nullptr) ctx.task = TaskRef(t);
      l.owner.call_exception_handler(ctx);
    }
  }
  if ((l.hooks & kStats) != 0) {
    if (t != nullptr) {
      ++d.totals.task_steps;
    } else {
      ++d.totals.callbacks;
    }
  }
  if (t != nullptr && tracks_tasks(l)) {
    auto it = d.tasks.find(t);
    std::uint64_t flow = 0;
    if (it != d.tasks.end()) {
      TaskRec& r = it->second;
      r.busy += took;
      ++r.steps;
      r.last_end = r.ready_at = end;
      r.waiting = true;
      flow = std::exchange(r.flow_in, 0);
    }
    if ((l.hooks & kTrace) != 0) {
      trace_slice("task", task_name(t),
                  static_cast<std::uint64_t>(tok.start.time_since_epoch().count()),
                  static_cast<std::uint64_t>(end.time_since_epoch().count()), flow);
    }
  } else if ((l.hooks & kTrace) != 0) {
    trace_slice("callback", t == nullptr ? "callback" : "timer",
                static_cast<std::uint64_t>(tok.start.time_since_epoch().count()),
                static_cast<std::uint64_t>(end.time_since_epoch().count()), 0);
  }
  if (t != nullptr) task_release(t);
}

void on_iteration(LoopImpl& l, std::size_t ready_depth, Clock::duration lag) noexcept {
  LoopDebug& d = state(l);
  LoopStats& s = d.totals;
  ++s.iterations;
  s.ready_depth = ready_depth;
  s.ready_depth_max = std::max(s.ready_depth_max, ready_depth);
  s.lag = lag;
  s.lag_max = std::max(s.lag_max, lag);
  if ((l.hooks & kTrace) != 0) {
    trace_counter("ready queue", static_cast<std::int64_t>(ready_depth));
    if (lag.count() > 0) {
      trace_counter("loop lag (us)",
                    std::chrono::duration_cast<std::chrono::microseconds>(lag).count());
    }
  }
}

void on_task_created(LoopImpl& l, TaskCore* t) noexcept {
  if (tracks_tasks(l)) rec(state(l), t, Clock::now()).waiting = false;
  if ((l.hooks & kTrace) != 0) trace_task_begin(t->id, task_name(t));
}

void on_task_done(LoopImpl& l, TaskCore* t) noexcept {
  if ((l.hooks & kTrace) != 0) trace_task_end(t->id, task_name(t));
  if (l.dbg_state) l.dbg_state->tasks.erase(t);
}

void on_wake(LoopImpl& l, TaskCore* t) noexcept {
  if (!tracks_tasks(l)) return;
  const Clock::time_point now = Clock::now();
  TaskRec& r = rec(state(l), t, now);
  if (r.waiting) r.idle += now - r.last_end;
  r.waiting = false;
  r.ready_at = now;
  ++r.wakeups;
  if ((l.hooks & kTrace) != 0) {
    r.flow_in = ++g_flows;
    trace_flow_start(r.flow_in);
  }
}

void on_block_forever(LoopImpl& l) noexcept {
  LoopDebug& d = state(l);
  if (d.warned_forever) return;
  if (l.timer_count() != 0 || l.fd_callback_count() != 0 || !l.transports.empty() ||
      !l.datagrams.empty() || !l.servers.empty() || l.signals || l.children || l.default_executor ||
      l.entry->pending()) {
    return;
  }
  std::size_t waiting = 0;
  bool wakeable = false;
  l.for_each_task([&](TaskCore* t) {
    ++waiting;
    const auto k = static_cast<WaitKind>(t->wait_kind);
    if (k == WaitKind::Custom || k == WaitKind::Timer || k == WaitKind::TimerFired) {
      wakeable = true;
    }
  });
  if (waiting == 0 || wakeable) return;
  d.warned_forever = true;
  std::string msg =
      "The event loop is about to block forever: no timer, no fd, no thread-safe "
      "callback can wake its " +
      std::to_string(waiting) + " waiting task(s)";
  l.for_each_task([&](TaskCore* t) {
    msg += '\n';
    msg += await_chain(t);
  });
  l.owner.call_exception_handler({msg, nullptr, {}});
}

void on_loop_destroyed(LoopImpl& l, bool closed) noexcept {
  const std::string loop = "<EventLoop " + std::to_string(l.serial) + ">";
  if (!closed) l.owner.call_exception_handler({"unclosed event loop " + loop, nullptr, {}});
  if (!l.transports.empty() || !l.datagrams.empty()) {
    l.owner.call_exception_handler({"unclosed transport(s) on " + loop + ": " +
                                        std::to_string(l.transports.size() + l.datagrams.size()),
                                    nullptr,
                                    {}});
  }
  if (!l.servers.empty()) {
    l.owner.call_exception_handler(
        {"unclosed server(s) on " + loop + ": " + std::to_string(l.servers.size()), nullptr, {}});
  }
  l.for_each_task([&](TaskCore* t) { on_task_destroyed_pending(l, t); });
}

}  // namespace weave::detail::dbg

namespace weave::detail {

void coro_never_awaited(void* frame) noexcept {
  EventLoop* loop = running_loop_or_null();
  if (loop == nullptr || !loop->get_debug()) return;
  try {
    const void* resume = *static_cast<const void* const*>(frame);
    loop->call_exception_handler(
        {"coroutine '" + dbg::coroutine_name(dbg::symbol_name(resume)) + "' was never awaited",
         nullptr, current_task()});
  } catch (...) {  // a report must not turn a destructor into a crash
  }
}

}  // namespace weave::detail

namespace weave::detail::dbg {

void on_task_destroyed_pending(LoopImpl& l, TaskCore* t) noexcept {
  if (t->done()) return;
  l.owner.call_exception_handler({"Task was destroyed but it is pending! <Task name='" +
                                      task_name(t) + "'>\n" + await_chain(t) + created_at(t),
                                  nullptr,
                                  {}});
}

}  // namespace weave::detail::dbg

namespace weave {

void EventLoop::set_stats(bool enabled) noexcept {
  detail::LoopImpl& l = impl();
  if (enabled) {
    l.hooks |= detail::dbg::kStats;
    if (l.dbg_state) {
      l.dbg_state->totals = LoopStats{};
      l.dbg_state->tasks.clear();
    }
  } else {
    l.hooks &= static_cast<std::uint8_t>(~detail::dbg::kStats);
  }
}

LoopStats EventLoop::stats() const {
  const detail::LoopImpl& l = *impl_;
  LoopStats s;
  if ((l.hooks & detail::dbg::kStats) == 0) return s;
  if (l.dbg_state) s = l.dbg_state->totals;
  s.tasks.clear();
  s.enabled = true;
  s.io_watches =
      l.fd_callback_count() + l.transports.size() + l.datagrams.size() + l.servers.size();
  l.for_each_task([&](detail::TaskCore* t) {
    TaskStats ts;
    ts.id = t->id;
    ts.name = detail::dbg::task_name(t);
    if (l.dbg_state) {
      auto it = l.dbg_state->tasks.find(t);
      if (it != l.dbg_state->tasks.end()) {
        const auto& r = it->second;
        ts.busy = r.busy;
        ts.scheduled = r.scheduled;
        ts.idle = r.idle;
        if (r.waiting) ts.idle += Clock::now() - r.last_end;
        ts.steps = r.steps;
        ts.wakeups = r.wakeups;
      }
    }
    s.tasks.push_back(std::move(ts));
  });
  std::reverse(s.tasks.begin(), s.tasks.end());
  return s;
}

}  // namespace weave

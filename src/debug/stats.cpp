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
/// One task's figures, in ticks (debug_mode.hpp). `mark` is when it last became ready (woken, or
/// created) while !waiting, and when its last step ended while waiting.
struct TaskRec {
  const TaskCore* key = nullptr;  ///< nullptr: a free slot
  std::uint64_t mark = 0;
  std::uint64_t busy = 0, scheduled = 0, idle = 0;
  std::uint64_t steps = 0;
  std::uint32_t wakeups = 0;
  std::uint32_t waiting = 0;          ///< 1: suspended since `mark`, not yet woken
  const std::string* name = nullptr;  ///< its name in the futures' extras, once it has one
  std::uint32_t id = 0;               ///< the task's id (its slot's home)
  std::uint32_t flow_in = 0;  ///< trace: the flow of the wake-up its next step ends (in its loop)
};

/// The records of a loop's tasks: open addressing, linear probing, backward-shift removal (no
/// tombstones), at most half full. A record's home is its task's id modulo the capacity: ids
/// are handed out in creation order, so the records of tasks made together lie together, in the
/// order their tasks lie in memory, and tasks alive together rarely collide. (Hashing the
/// address scattered them: a million tasks cost a cache and TLB miss per look-up, and a
/// std::unordered_map cost an allocation per task.)
class TaskTable {
 public:
  [[gnu::always_inline]] TaskRec* find(const TaskCore* t, std::uint32_t id) noexcept {
    if (slots_.empty()) [[unlikely]]
      return nullptr;
    // No record lies further than max_disp_ from its home: a miss inside a run of records at
    // home (tasks made together) ends there, not at the run's end.
    for (std::size_t k = 0, i = id & mask_; k <= max_disp_; ++k, i = (i + 1) & mask_) {
      TaskRec& r = slots_[i];
      if (r.key == t) return &r;
      if (r.key == nullptr) return nullptr;
    }
    return nullptr;
  }
  /// The task's record, made (ready since `now`) when it has none.
  [[gnu::always_inline]] TaskRec& get(const TaskCore* t, std::uint32_t id, std::uint64_t now) {
    if (TaskRec* r = find(t, id)) [[likely]]
      return *r;
    return insert(t, id, now);
  }
  [[gnu::noinline]] TaskRec& insert(const TaskCore* t, std::uint32_t id, std::uint64_t now) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    std::size_t i = id & mask_;
    while (slots_[i].key != nullptr) i = (i + 1) & mask_;
    max_disp_ = std::max(max_disp_, (i - id) & mask_);
    slots_[i] = TaskRec{};
    slots_[i].key = t;
    slots_[i].id = id;
    slots_[i].mark = now;
    ++count_;
    return slots_[i];
  }
  void erase(const TaskCore* t, std::uint32_t id) noexcept {
    TaskRec* r = find(t, id);
    if (r == nullptr) return;
    std::size_t hole = static_cast<std::size_t>(r - slots_.data());
    // A record further than max_disp_ past the hole cannot belong before it.
    for (std::size_t j = (hole + 1) & mask_;
         slots_[j].key != nullptr && ((j - hole) & mask_) <= max_disp_; j = (j + 1) & mask_) {
      const std::size_t h = slots_[j].id & mask_;
      // slots_[j] may fill the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole < j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].key = nullptr;
    --count_;
    ++moves_;
  }
  void clear() noexcept {
    for (TaskRec& r : slots_) r.key = nullptr;
    count_ = 0;
    max_disp_ = 0;
    ++moves_;
  }
  /// Changes whenever a record may have moved (a removal, a growth).
  std::uint64_t moves() const noexcept { return moves_; }
  /// For the outside reader's offsets: where the records' vector lies in the table.
  static constexpr std::size_t slots_offset() noexcept;

 private:
  void grow() {
    std::vector<TaskRec> old = std::move(slots_);
    const std::size_t cap = old.empty() ? 64 : old.size() * 2;
    slots_.assign(cap, TaskRec{});
    mask_ = cap - 1;
    count_ = 0;
    max_disp_ = 0;
    ++moves_;
    for (const TaskRec& r : old) {
      if (r.key == nullptr) continue;
      std::size_t i = r.id & mask_;
      while (slots_[i].key != nullptr) i = (i + 1) & mask_;
      max_disp_ = std::max(max_disp_, (i - r.id) & mask_);
      slots_[i] = r;
      ++count_;
    }
  }

  std::vector<TaskRec> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::size_t max_disp_ = 0;  ///< the furthest any record lies from its home
  std::uint64_t moves_ = 0;
};
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
constexpr std::size_t TaskTable::slots_offset() noexcept {
  return offsetof(TaskTable, slots_);
}
#pragma GCC diagnostic pop
}  // namespace

struct LoopDebug {
  LoopDebug() noexcept { init_ticks(); }
  std::uint64_t stats_on = 0;  ///< mirrors kStats, for the outside reader (weave ps)
  TaskTable tasks;
  LoopStats totals;
  Watchdog* watchdog = nullptr;
  bool warned_forever = false;
  // The node being run. A step's end is the next step's start when nothing ran in between (the
  // same batch, or a next batch with no poll before it): one stamp per step.
  std::uint64_t last = 0;  ///< the last stamp: the running step's start, or the last one's end
  bool fresh = false;      ///< `last` is the end of a step and nothing ran since
  bool in_step = false;
  const TaskCore* current = nullptr;  ///< the task whose step runs
  std::uint32_t current_id = 0;
  TaskRec* current_rec = nullptr;  ///< its record, while tasks.moves() == current_moves
  std::uint64_t current_moves = 0;
  bool current_done = false;  ///< it finished in this step: its record is gone
  std::uint32_t flows = 0;    ///< trace: this loop's wake-up flows (the loop's serial above)
  std::size_t last_depth = ~std::size_t{0};  ///< trace: the ready queue's depth last recorded
};

void destroy(LoopDebug* d) noexcept {
  if (d->watchdog != nullptr) watchdog_stop(d->watchdog);
  delete d;
}

namespace {
[[gnu::noinline]] LoopDebug& make_state(LoopImpl& l) {
  l.dbg_state.reset(new LoopDebug);
  l.dbg_state->stats_on = (l.hooks & kStats) != 0 ? 1 : 0;
  publish_fence();
  l.record.stats = l.dbg_state.get();
  return *l.dbg_state;
}
LoopDebug& state(LoopImpl& l) {
  if (!l.dbg_state) [[unlikely]]
    return make_state(l);
  return *l.dbg_state;
}
std::size_t io_watches(const LoopImpl& l) noexcept {
  return l.fd_callback_count() + l.transports.size() + l.datagrams.size() + l.servers.size();
}
bool tracks_tasks(const LoopImpl& l) noexcept {
  return (l.hooks & (kStats | kTrace)) != 0;
}
/// The task's name when it has one (a pointer into its extras, stable until the task goes).
const std::string* cached_name(TaskRec& r, const TaskCore* t) noexcept {
  if (r.name == nullptr && (t->flags & fflag::kHasExtras) != 0) {
    const FutureExtras* e = t->find_extras();
    if (e != nullptr) r.name = &e->name;
  }
  return r.name != nullptr && !r.name->empty() ? r.name : nullptr;
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
  if (extras == nullptr || site_file(extras->created_at) == nullptr) return {};
  return "\nTask created at " + site_text(extras->created_at);
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
    const CallSite* site = task->wait_site;
    if (kind != WaitKind::None && site != nullptr && site_file(*site) != nullptr) {
      out += " at " + site_text(*site);
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
  tok.start = d.fresh ? d.last : ticks();
  d.last = tok.start;
  d.fresh = false;
  d.in_step = true;
  if (n->kind == NodeKind::Task) {
    auto* t = static_cast<TaskCore*>(n);
    // The wake-up of a sleep is the timer's callback, not a step of the task.
    if (static_cast<WaitKind>(t->wait_kind) != WaitKind::TimerFired) tok.task = t;
  }
  TaskCore* t = tok.task;
  if (t != nullptr && tracks_tasks(l)) {
    TaskRec& r = d.tasks.get(t, t->id, tok.start);
    r.scheduled += tok.start - r.mark;
    d.current = t;
    d.current_id = t->id;
    d.current_rec = &r;
    d.current_moves = d.tasks.moves();
    d.current_done = false;
    if ((l.hooks & kTrace) != 0) {
      tok.id = t->id;
      const std::uint32_t flow = std::exchange(r.flow_in, 0);
      tok.flow = flow != 0 ? (l.serial << 32) | flow : 0;
      tok.name = cached_name(r, t);
    }
  }
  // The step may finish the task and free it: a report after it, or its name, needs it alive.
  if (t != nullptr && ((l.hooks & kDebug) != 0 || tok.name != nullptr)) {
    ++t->refs;
    tok.held = true;
  }
  if ((l.hooks & kDebug) != 0) {
    if (d.watchdog == nullptr) d.watchdog = watchdog_start(l);
    tok.cpu_start_ns = thread_cpu_ns();
    watchdog_step_begin(d.watchdog, t, tok.cpu_start_ns);
  }
}

namespace {
void report_slow(LoopImpl& l, const StepToken& tok, Clock::duration took) noexcept {
  if (took < l.owner.slow_callback_duration) return;
  try {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", std::chrono::duration<double>(took).count());
    TaskCore* t = tok.held ? tok.task : nullptr;
    std::string what = t != nullptr ? "<Task name='" + task_name(t) + "'>" : "a callback";
    ExceptionContext ctx{"Executing " + what + " took " + secs + " seconds", nullptr, {}};
    if (t != nullptr) ctx.task = TaskRef(t);
    l.owner.call_exception_handler(ctx);
  } catch (...) {  // a report must not end the loop
  }
}

/// The step's task's figures: busy time, a step, and suspended since `end`.
void account_step(LoopDebug& d, std::uint64_t start, std::uint64_t end) noexcept {
  if (d.current_done) return;
  TaskRec* r =
      d.tasks.moves() == d.current_moves ? d.current_rec : d.tasks.find(d.current, d.current_id);
  if (r == nullptr) return;
  r->busy += end - start;
  ++r->steps;
  r->mark = end;
  r->waiting = 1;
}
}  // namespace

void after_node(LoopImpl& l, StepToken& tok) noexcept {
  LoopDebug& d = state(l);
  const std::uint64_t end = ticks();
  d.last = end;
  d.fresh = true;
  d.in_step = false;
  TaskCore* t = tok.task;
  if ((l.hooks & kDebug) != 0) {
    if (d.watchdog != nullptr) watchdog_step_end(d.watchdog);
    report_slow(l, tok, ticks_duration(end - tok.start));
  }
  if ((l.hooks & kStats) != 0) {
    if (t != nullptr) {
      ++d.totals.task_steps;
    } else {
      ++d.totals.callbacks;
    }
  }
  if (t != nullptr && tracks_tasks(l)) {
    account_step(d, tok.start, end);
    d.current = nullptr;
    if ((l.hooks & kTrace) != 0) trace_slice("task", tok.id, tok.name, tok.start, end, tok.flow);
  } else if ((l.hooks & kTrace) != 0) {
    static const std::string kCallback = "callback", kTimer = "timer";
    trace_slice("callback", 0, t == nullptr ? &kCallback : &kTimer, tok.start, end, 0);
  }
  if (tok.held) task_release(t);
}

void on_run(LoopImpl& l) noexcept {
  if (l.dbg_state) l.dbg_state->fresh = false;
}

void on_iteration(LoopImpl& l, std::size_t ready_depth, Clock::duration lag, bool polled) noexcept {
  LoopDebug& d = state(l);
  if (polled) {
    d.fresh = false;                      // the poll may have blocked: that time is no step's
    d.totals.io_watches = io_watches(l);  // for the outside reader, as often as I/O is seen
  }
  LoopStats& s = d.totals;
  ++s.iterations;
  s.ready_depth = ready_depth;
  s.ready_depth_max = std::max(s.ready_depth_max, ready_depth);
  s.lag = lag;
  s.lag_max = std::max(s.lag_max, lag);
  if ((l.hooks & kTrace) != 0) {
    // A counter is a step function: a value that did not change needs no event.
    if (ready_depth != d.last_depth) {
      d.last_depth = ready_depth;
      trace_counter("ready queue", static_cast<std::int64_t>(ready_depth), ticks());
    }
    if (lag.count() > 0) {
      trace_counter("loop lag (us)",
                    std::chrono::duration_cast<std::chrono::microseconds>(lag).count(), ticks());
    }
  }
}

void on_task_created(LoopImpl& l, TaskCore* t) noexcept {
  if (!tracks_tasks(l)) return;
  LoopDebug& d = state(l);
  const std::uint64_t now = d.in_step ? d.last : ticks();
  try {
    TaskRec& r = d.tasks.get(t, t->id, now);
    r.waiting = 0;
    if ((l.hooks & kTrace) != 0) trace_task_begin(t->id, cached_name(r, t), ticks());
  } catch (...) {  // no memory for its record: the task goes uncounted
  }
}

void on_task_done(LoopImpl& l, TaskCore* t) noexcept {
  if (!l.dbg_state) return;
  LoopDebug& d = *l.dbg_state;
  if ((l.hooks & kTrace) != 0) {
    TaskRec* r = d.tasks.find(t, t->id);
    trace_task_end(t->id, r != nullptr ? cached_name(*r, t) : nullptr, ticks());
  }
  d.tasks.erase(t, t->id);
  if (t == d.current) d.current_done = true;
}

void on_wake(LoopImpl& l, TaskCore* t) noexcept {
  if (!tracks_tasks(l)) return;
  LoopDebug& d = state(l);
  // Inside a step the wake-up is stamped with the step's start (it is no more than that step
  // early); a trace's flow needs the real time, to bind to the waking slice.
  const bool trace = (l.hooks & kTrace) != 0;
  const std::uint64_t now = d.in_step && !trace ? d.last : ticks();
  try {
    TaskRec& r = d.tasks.get(t, t->id, now);
    if (r.waiting != 0) r.idle += now - r.mark;
    r.waiting = 0;
    r.mark = now;
    ++r.wakeups;
    if (trace) {
      r.flow_in = ++d.flows;
      if (r.flow_in == 0) r.flow_in = ++d.flows;  // 0 is "no flow"
      trace_flow_start((l.serial << 32) | r.flow_in, now);
    }
  } catch (...) {
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

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
void fill_stats_offsets(DebugOffsets& d) noexcept {
  d.stats_on = offsetof(LoopDebug, stats_on);
  d.stats_iterations = offsetof(LoopDebug, totals) + offsetof(LoopStats, iterations);
  d.stats_ready_depth = offsetof(LoopDebug, totals) + offsetof(LoopStats, ready_depth);
  d.stats_lag_ns = offsetof(LoopDebug, totals) + offsetof(LoopStats, lag);
  d.stats_io_watches = offsetof(LoopDebug, totals) + offsetof(LoopStats, io_watches);
  d.stats_slots = offsetof(LoopDebug, tasks) + TaskTable::slots_offset();
  d.rec_size = sizeof(TaskRec);
  d.rec_key = offsetof(TaskRec, key);
  d.rec_mark = offsetof(TaskRec, mark);
  d.rec_busy = offsetof(TaskRec, busy);
  d.rec_scheduled = offsetof(TaskRec, scheduled);
  d.rec_idle = offsetof(TaskRec, idle);
  d.rec_steps = offsetof(TaskRec, steps);
  d.rec_wakeups = offsetof(TaskRec, wakeups);
  d.rec_waiting = offsetof(TaskRec, waiting);
  d.tick_base = reinterpret_cast<std::uintptr_t>(&g_tick_base);
}
#pragma GCC diagnostic pop

}  // namespace weave::detail::dbg

namespace weave {

void EventLoop::set_stats(bool enabled) noexcept {
  detail::LoopImpl& l = impl();
  if (enabled) {
    detail::dbg::init_ticks();
    l.hooks |= detail::dbg::kStats;
    if (l.dbg_state) {
      l.dbg_state->totals = LoopStats{};
      l.dbg_state->tasks.clear();
    }
    detail::dbg::state(l).stats_on = 1;
  } else {
    l.hooks &= static_cast<std::uint8_t>(~detail::dbg::kStats);
    if (l.dbg_state) l.dbg_state->stats_on = 0;
  }
}

LoopStats EventLoop::stats() const {
  using detail::dbg::ticks_duration;
  const detail::LoopImpl& l = *impl_;
  LoopStats s;
  if ((l.hooks & detail::dbg::kStats) == 0) return s;
  if (l.dbg_state) s = l.dbg_state->totals;
  s.tasks.clear();
  s.enabled = true;
  s.io_watches = detail::dbg::io_watches(l);
  const std::uint64_t now = detail::dbg::ticks();
  l.for_each_task([&](detail::TaskCore* t) {
    TaskStats ts;
    ts.id = t->id;
    ts.name = detail::dbg::task_name(t);
    const detail::dbg::TaskRec* r = l.dbg_state ? l.dbg_state->tasks.find(t, t->id) : nullptr;
    if (r != nullptr) {
      ts.busy = ticks_duration(r->busy);
      ts.scheduled = ticks_duration(r->scheduled);
      ts.idle = ticks_duration(r->idle);
      // The time since its last mark: ready (a yield, a wake-up not yet run) or suspended.
      const bool ready =
          r->waiting == 0 || static_cast<detail::WaitKind>(t->wait_kind) == detail::WaitKind::None;
      const bool running = t == detail::current_task_core();
      if (!running && now > r->mark)
        (ready ? ts.scheduled : ts.idle) += ticks_duration(now - r->mark);
      ts.steps = r->steps;
      ts.wakeups = r->wakeups;
    }
    s.tasks.push_back(std::move(ts));
  });
  std::reverse(s.tasks.begin(), s.tasks.end());
  return s;
}

}  // namespace weave

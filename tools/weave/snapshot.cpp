// Walking a weave process's loops and tasks through its table of offsets. The layout it follows
// is the one src/debug/graph.cpp reads in-process:
// - a task's frames: `leaf` is the innermost coroutine; each frame's promise (a TaskCore) holds
//   its awaiting frame in `link_`; the chain ends at the task's root frame (the task's address
//   minus the promise's offset in a frame). A frame's first word is its resume function.
// - awaiters, from the done-waiters: a task node is a task awaiting directly; a callback node
//   running MultiWait's slot function is a completion slot of gather/wait/as_completed, whose
//   owner names the waiting task; a user callback may name its awaiter (a TaskGroup's parent,
//   shield's outer future). An awaiter that is a plain future is followed to its own awaiters.
// Every read may fail or return garbage (the target runs on): each walk is capped and every
// pointer checked, and a row whose walk was cut says so.

#include "snapshot.hpp"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif
#include <cstring>

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "weave/detail/future_core.hpp"

namespace weave_tool {

namespace {

namespace wd = weave::detail;

constexpr int kAttempts = 4;
constexpr std::size_t kMaxTasks = std::size_t{1} << 26;
constexpr std::size_t kMaxFrames = 256;
constexpr std::size_t kMaxWaiters = 1 << 16;
constexpr std::size_t kMaxName = 1024;
constexpr std::size_t kMaxTaskSize = 512;
constexpr int kMaxFutureDepth = 8;

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

void drop_repeats(LoopSnapshot& walk);

class Walker {
 public:
  explicit Walker(Target& t) : m_(t.memory()), d_(t.offsets()) {}

  /// The names of named tasks, by task address (the extras map).
  std::unordered_map<std::uint64_t, std::string> names(bool& consistent);
  LoopSnapshot loop(std::uint64_t record);
  std::vector<std::uint64_t> loop_records();

 private:
  bool walk_registry(std::uint64_t record, LoopSnapshot& out);
  void stats(std::uint64_t record, LoopSnapshot& out);
  double seconds_per_tick(std::uint64_t& now_tick);
  TaskRow task(std::uint64_t addr, std::uint64_t running);
  std::string sleep_due(std::uint64_t task, std::uint64_t slot);
  std::string waited_since(std::uint32_t since) const;
  void frames(std::uint64_t task, std::uint64_t leaf, TaskRow& row);
  void awaiters(std::uint64_t future, std::vector<std::uint64_t>& out, int depth, bool& cut);
  std::string waits_on(std::uint8_t kind, std::uint64_t task, std::uint64_t target);

  template <class T>
  std::optional<T> field(std::uint64_t base, std::uint32_t offset) {
    return m_.get<T>(base + offset);
  }

  Remote& m_;
  std::uint64_t timers_begin_ = 0, timers_end_ = 0;  ///< the walked loop's timer heap
  std::int64_t now_ns_ = 0;                          ///< CLOCK_MONOTONIC at the walk
  const weave::detail::dbg::DebugOffsets& d_;
};

std::vector<std::uint64_t> Walker::loop_records() {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::vector<std::uint64_t> out;
    const auto g1 = m_.get_fresh<std::uint64_t>(d_.loops_generation);
    auto head = m_.get_fresh<std::uint64_t>(d_.loops);
    std::unordered_set<std::uint64_t> seen;
    for (std::uint64_t r = head.value_or(0); plausible(r) && out.size() < 4096;) {
      if (!seen.insert(r).second) break;
      out.push_back(r);
      r = m_.get_fresh<std::uint64_t>(r + d_.loop_next).value_or(0);
    }
    const auto g2 = m_.get_fresh<std::uint64_t>(d_.loops_generation);
    if (g1 && g2 && *g1 == *g2 && *g1 % 2 == 0) return out;
    if (attempt + 1 == kAttempts) return out;
    sched_yield();
  }
  return {};
}

std::unordered_map<std::uint64_t, std::string> Walker::names(bool& consistent) {
  std::unordered_map<std::uint64_t, std::string> out;
  consistent = false;
  for (int attempt = 0; attempt < kAttempts && !consistent; ++attempt) {
    out.clear();
    m_.clear();
    const auto g1 = m_.get_fresh<std::uint64_t>(d_.extras_generation);
    const std::uint64_t map = m_.get_fresh<std::uint64_t>(d_.extras_map).value_or(0);
    if (!plausible(map)) {
      consistent = true;  // no task ever had a name
      return out;
    }
    const std::uint64_t count = field<std::uint64_t>(map, d_.map_size).value_or(0);
    std::unordered_set<std::uint64_t> seen;
    seen.reserve(std::min<std::uint64_t>(count, kMaxTasks) + 64);
    out.reserve(seen.bucket_count());
    std::uint64_t n = field<std::uint64_t>(map, d_.map_first).value_or(0);
    while (plausible(n) && seen.size() <= count + 64 && seen.insert(n).second) {
      const auto key = field<std::uint64_t>(n, d_.map_node_key);
      const auto data = field<std::uint64_t>(n, d_.map_node_name + d_.string_data);
      const auto size = field<std::uint64_t>(n, d_.map_node_name + d_.string_size);
      if (key && data && size && *size > 0 && *size <= kMaxName) {
        std::string s(*size, '\0');
        if (m_.read(*data, s.data(), s.size())) out[*key] = std::move(s);
      }
      n = field<std::uint64_t>(n, d_.map_node_next).value_or(0);
    }
    const auto g2 = m_.get_fresh<std::uint64_t>(d_.extras_generation);
    consistent = g1 && g2 && *g1 == *g2 && *g1 % 2 == 0;
  }
  return out;
}

LoopSnapshot Walker::loop(std::uint64_t record) {
  LoopSnapshot s;
  s.serial = m_.get_fresh<std::uint64_t>(record + d_.loop_serial).value_or(0);
  s.tid = m_.get_fresh<std::int32_t>(record + d_.loop_tid).value_or(0);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    m_.clear();
    LoopSnapshot walk = s;
    walk.attempts = attempt + 1;
    const auto g1 = m_.get_fresh<std::uint64_t>(record + d_.loop_generation);
    const bool ok = walk_registry(record, walk);
    const auto g2 = m_.get_fresh<std::uint64_t>(record + d_.loop_generation);
    walk.consistent = ok && g1 && g2 && *g1 == *g2 && *g1 % 2 == 0;
    if (walk.consistent) {
      stats(record, walk);
      return walk;
    }
    if (attempt + 1 == kAttempts) {
      drop_repeats(walk);
      stats(record, walk);
      return walk;
    }
    sched_yield();
  }
  return s;
}

bool Walker::walk_registry(std::uint64_t record, LoopSnapshot& out) {
  const std::uint64_t head_at = m_.get_fresh<std::uint64_t>(record + d_.loop_tasks).value_or(0);
  if (!plausible(head_at)) return false;
  // The loop thread's current-task variable, then the task it names.
  const std::uint64_t slot = m_.get_fresh<std::uint64_t>(record + d_.loop_running).value_or(0);
  const std::uint64_t running = plausible(slot) ? m_.get_fresh<std::uint64_t>(slot).value_or(0) : 0;
  const std::uint64_t timers = m_.get_fresh<std::uint64_t>(record + d_.loop_timers).value_or(0);
  timers_begin_ =
      plausible(timers) ? m_.get<std::uint64_t>(timers + d_.vector_begin).value_or(0) : 0;
  timers_end_ = plausible(timers) ? m_.get<std::uint64_t>(timers + d_.vector_end).value_or(0) : 0;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  now_ns_ = std::int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  // A cycle (a torn link) is caught by Brent's method: no set of a million addresses.
  std::uint64_t t = m_.get_fresh<std::uint64_t>(head_at).value_or(0);
  std::uint64_t mark = 0;
  std::size_t power = 1, lambda = 0;
  while (t != 0) {
    if (!plausible(t) || out.tasks.size() >= kMaxTasks || t == mark) {
      out.truncated = true;
      return false;
    }
    if (++lambda == power) {
      mark = t;
      power *= 2;
      lambda = 0;
    }
    out.tasks.push_back(task(t, running));
    const auto next = field<std::uint64_t>(t, d_.task_reg_next);
    if (!next) {
      out.truncated = true;
      return false;
    }
    t = *next;
  }
  return true;
}

/// "1.250s": the time since `since`, the target's CLOCK_MONOTONIC in milliseconds modulo 2^32
/// when the wait began (read from a clock the loop had read anyway, so a few ms early at most).
std::string Walker::waited_since(std::uint32_t since) const {
  const auto now_ms = static_cast<std::uint32_t>(now_ns_ / 1000000);
  const std::uint32_t ms = now_ms - since;  // modulo 2^32: right across the wrap
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", static_cast<double>(ms) / 1e3);
  return buf;
}

/// The target's stamps in seconds: TSC ticks at the rate between its base pair and now (the TSC
/// and CLOCK_MONOTONIC are the machine's), or nanoseconds.
double Walker::seconds_per_tick(std::uint64_t& now_tick) {
  const auto tick0 = m_.get_fresh<std::uint64_t>(d_.tick_base);
  const auto ns0 = m_.get_fresh<std::uint64_t>(d_.tick_base + 8);
  const auto tsc = m_.get_fresh<std::uint64_t>(d_.tick_base + 16);
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000u +
                      static_cast<std::uint64_t>(now.tv_nsec);
  now_tick = now_ns;
  if (!tick0 || !ns0 || !tsc || *tsc == 0) return 1e-9;
#if defined(__x86_64__)
  now_tick = __rdtsc();
  if (now_tick <= *tick0 || now_ns <= *ns0) return 0;
  return static_cast<double>(now_ns - *ns0) * 1e-9 / static_cast<double>(now_tick - *tick0);
#else
  return 0;
#endif
}

/// The loop's statistics and its tasks' records, when the loop has statistics on. Read once,
/// after the walk: figures that move at every step need no consistency of their own.
void Walker::stats(std::uint64_t record, LoopSnapshot& out) {
  const std::uint64_t st = m_.get_fresh<std::uint64_t>(record + d_.loop_stats).value_or(0);
  if (!plausible(st) || m_.get_fresh<std::uint64_t>(st + d_.stats_on).value_or(0) != 1) return;
  std::uint64_t now = 0;
  const double spt = seconds_per_tick(now);
  out.stats = true;
  out.iterations = m_.get_fresh<std::uint64_t>(st + d_.stats_iterations).value_or(0);
  out.ready_depth = m_.get_fresh<std::uint64_t>(st + d_.stats_ready_depth).value_or(0);
  out.io_watches = m_.get_fresh<std::uint64_t>(st + d_.stats_io_watches).value_or(0);
  out.lag_s =
      static_cast<double>(m_.get_fresh<std::int64_t>(st + d_.stats_lag_ns).value_or(0)) / 1e9;
  const std::uint64_t begin = m_.get_fresh<std::uint64_t>(st + d_.stats_slots).value_or(0);
  const std::uint64_t end =
      m_.get_fresh<std::uint64_t>(st + d_.stats_slots + d_.vector_end).value_or(0);
  if (!plausible(begin) || end <= begin || d_.rec_size == 0) return;
  const std::uint64_t count = (end - begin) / d_.rec_size;
  if (count > 4 * kMaxTasks) return;
  std::vector<unsigned char> recs(count * d_.rec_size);
  if (!m_.read(begin, recs.data(), recs.size())) return;
  auto word = [&](std::uint64_t i, std::uint32_t off) {
    std::uint64_t v = 0;
    std::memcpy(&v, recs.data() + i * d_.rec_size + off, sizeof v);
    return v;
  };
  std::unordered_map<std::uint64_t, std::uint64_t> by_task;
  by_task.reserve(out.tasks.size() * 2);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t key = word(i, d_.rec_key);
    if (key != 0) by_task.emplace(key, i);
  }
  for (TaskRow& row : out.tasks) {
    auto it = by_task.find(row.address);
    if (it == by_task.end()) continue;
    const std::uint64_t i = it->second;
    row.has_stats = true;
    row.busy_s = static_cast<double>(word(i, d_.rec_busy)) * spt;
    row.scheduled_s = static_cast<double>(word(i, d_.rec_scheduled)) * spt;
    row.idle_s = static_cast<double>(word(i, d_.rec_idle)) * spt;
    row.steps = word(i, d_.rec_steps);
    row.wakeups = word(i, d_.rec_wakeups) & 0xffffffffu;
    // Since its last change: suspended (idle) or queued (scheduled), as loop.stats() counts it.
    const std::uint64_t mark = word(i, d_.rec_mark);
    const bool waiting = (word(i, d_.rec_waiting) & 0xffffffffu) != 0;
    const std::string_view state = row.state;
    if (now > mark && state != "running") {
      (waiting && state == "waiting" ? row.idle_s : row.scheduled_s) +=
          static_cast<double>(now - mark) * spt;
    }
  }
}

/// ",due-in-1.250s" from the task's entry in the timer heap, or nothing when it does not check.
std::string Walker::sleep_due(std::uint64_t task, std::uint64_t slot) {
  if (timers_end_ <= timers_begin_ || d_.timer_entry_size == 0) return "";
  if (slot >= (timers_end_ - timers_begin_) / d_.timer_entry_size) return "";
  const std::uint64_t entry = timers_begin_ + slot * d_.timer_entry_size;
  const auto tagged = m_.get<std::uint64_t>(entry + d_.timer_entry_tagged);
  const auto when = m_.get<std::int64_t>(entry + d_.timer_entry_when);
  if (!tagged || !when || *tagged != (task | 1)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, ",due-in-%.3fs", static_cast<double>(*when - now_ns_) / 1e9);
  return buf;
}

std::string Walker::waits_on(std::uint8_t kind, std::uint64_t task, std::uint64_t target) {
  switch (static_cast<wd::WaitKind>(kind)) {
    case wd::WaitKind::None:
      return "-";
    case wd::WaitKind::List:
      return "list:" + hex(target);
    case wd::WaitKind::Timer:
      return "sleep" + sleep_due(task, target);
    case wd::WaitKind::TimerFired:
      return "sleep(due)";
    case wd::WaitKind::Future: {
      const auto flags = field<std::uint8_t>(target, d_.node_flags);
      const auto id = field<std::uint32_t>(target, d_.node_id);
      if (flags && id && (*flags & wd::fflag::kIsTask) != 0) return "task:" + std::to_string(*id);
      return "future:" + hex(target);
    }
    case wd::WaitKind::Custom:
      return "custom:" + hex(target);
  }
  return "?";
}

TaskRow Walker::task(std::uint64_t addr, std::uint64_t running) {
  TaskRow row;
  row.address = addr;
  unsigned char core[kMaxTaskSize];
  if (d_.task_size > sizeof core || !m_.read(addr, core, d_.task_size)) {
    row.truncated = true;
    row.state = "?";
    row.waits_on = "?";
    row.site = "-";
    row.waited = "-";
    return row;
  }
  auto at = [&](std::uint32_t off, auto zero) {
    decltype(zero) v;
    std::memcpy(&v, core + off, sizeof v);
    return v;
  };
  row.id = at(d_.node_id, std::uint32_t{});
  const auto fstate = static_cast<wd::FutureState>(at(d_.node_state, std::uint8_t{}));
  const std::uint8_t kind = at(d_.node_wait_kind, std::uint8_t{});
  const std::uint64_t waiting_on = at(d_.task_waiting_on, std::uint64_t{});
  if (fstate != wd::FutureState::Pending) {
    row.state = "done";
  } else if (addr == running) {
    row.state = "running";
  } else {
    row.state = static_cast<wd::WaitKind>(kind) == wd::WaitKind::None ? "ready" : "waiting";
  }
  row.waits_on = addr == running ? std::string("-") : waits_on(kind, addr, waiting_on);
  row.waited = std::strcmp(row.state, "waiting") == 0
                   ? waited_since(at(d_.task_wait_since, std::uint32_t{}))
                   : std::string("-");
  row.site = "-";
  const std::uint64_t site = at(d_.task_wait_site, std::uint64_t{});
  if (addr != running && static_cast<wd::WaitKind>(kind) != wd::WaitKind::None && plausible(site)) {
    const std::uint64_t bits = field<std::uint64_t>(site, 0).value_or(0);
    const std::uint64_t file = bits & ((std::uint64_t{1} << d_.site_line_shift) - 1);
    const auto line = static_cast<unsigned>(bits >> d_.site_line_shift);
    std::optional<std::string> name = file != 0 ? m_.c_string(file, 4096) : std::nullopt;
    if (name && line != 0) row.site = *name + ":" + std::to_string(line);
  }
  frames(addr, at(d_.task_leaf, std::uint64_t{}), row);
  bool cut = false;
  awaiters(addr, row.awaiters, 0, cut);
  row.truncated = row.truncated || cut;
  return row;
}

void Walker::frames(std::uint64_t task, std::uint64_t leaf, TaskRow& row) {
  const std::uint64_t root = task - d_.frame_promise;
  std::vector<std::uint64_t> seen;  // a frame met again is a torn or bad link
  std::uint64_t f = leaf;
  while (f != 0) {
    if (!plausible(f) || row.frames.size() >= kMaxFrames ||
        std::find(seen.begin(), seen.end(), f) != seen.end()) {
      row.truncated = true;
      return;
    }
    const auto resume = field<std::uint64_t>(f, d_.frame_resume);
    if (!resume) {
      row.truncated = true;
      return;
    }
    row.frames.push_back(*resume);
    seen.push_back(f);
    if (f == root) return;
    f = field<std::uint64_t>(f, d_.frame_promise + d_.future_link).value_or(0);
  }
}

void Walker::awaiters(std::uint64_t future, std::vector<std::uint64_t>& out, int depth, bool& cut) {
  auto add = [&](std::uint64_t a) {
    if (!plausible(a)) return;
    const auto flags = field<std::uint8_t>(a, d_.node_flags);
    if (!flags) {
      cut = true;
      return;
    }
    if ((*flags & wd::fflag::kIsTask) == 0) {
      // A plain future (shield's outer one, a TaskGroup's): whoever awaits it awaits this.
      if (depth < kMaxFutureDepth) awaiters(a, out, depth + 1, cut);
      return;
    }
    for (std::uint64_t x : out) {
      if (x == a) return;
    }
    out.push_back(a);
  };
  const auto state = field<std::uint8_t>(future, d_.node_state);
  if (!state || static_cast<wd::FutureState>(*state) != wd::FutureState::Pending) return;
  const std::uint64_t head = field<std::uint64_t>(future, d_.future_done_waiters).value_or(0);
  std::uint64_t n = head;
  for (std::size_t i = 0; n != 0; ++i) {
    if (!plausible(n) || i >= kMaxWaiters) {
      cut = true;
      return;
    }
    const auto kind = field<std::uint8_t>(n, d_.node_kind);
    if (!kind) {
      cut = true;
      return;
    }
    if (static_cast<wd::NodeKind>(*kind) == wd::NodeKind::Task) {
      add(n);
    } else if (field<std::uint64_t>(n, d_.callback_fn).value_or(0) == d_.multiwait_slot_run) {
      const std::uint64_t owner = field<std::uint64_t>(n, d_.multiwait_slot_owner).value_or(0);
      if (plausible(owner)) add(field<std::uint64_t>(owner, d_.multiwait_task).value_or(0));
    } else if ((field<std::uint8_t>(n, d_.node_flags).value_or(0) & d_.user_callback_flag) != 0) {
      add(field<std::uint64_t>(n, d_.callback_awaiter).value_or(0));
    }
    n = field<std::uint64_t>(n, d_.node_next_w).value_or(0);
    if (n == head) return;
  }
}

/// A walk through a task freed under it may come back to tasks it saw (until the cycle check
/// closes): each task is kept once, by address and by id.
void drop_repeats(LoopSnapshot& walk) {
  std::unordered_set<std::uint64_t> addresses;
  std::unordered_set<std::uint32_t> ids;
  std::vector<TaskRow> kept;
  for (TaskRow& t : walk.tasks) {
    if (addresses.insert(t.address).second && ids.insert(t.id).second) kept.push_back(std::move(t));
  }
  walk.tasks = std::move(kept);
}

}  // namespace

Snapshot take_snapshot(Target& target) {
  Walker w(target);
  Snapshot s;
  std::unordered_map<std::uint64_t, std::string> names = w.names(s.names_consistent);
  for (std::uint64_t r : w.loop_records()) s.loops.push_back(w.loop(r));
  for (LoopSnapshot& l : s.loops) {
    for (TaskRow& t : l.tasks) {
      auto it = names.find(t.address);
      t.name = it != names.end() ? it->second : "Task-" + std::to_string(t.id);
    }
  }
  return s;
}

}  // namespace weave_tool

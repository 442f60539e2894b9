#pragma once
// One reading of a weave process's tasks: per loop, the pending tasks with their waits, frames
// and awaiters. Each loop's walk is repeated while its registry's generation moved under it (a
// bounded number of times); a walk that never saw it still is kept, marked as such.

#include <cstdint>
#include <string>
#include <vector>

#include "target.hpp"

namespace weave_tool {

struct TaskRow {
  std::uint64_t address = 0;
  std::uint32_t id = 0;
  std::string name;
  const char* state = "";               ///< running, ready, waiting, done
  std::string waits_on;                 ///< "-", "sleep", "task:ID", "future:0x...", ...
  std::string site;                     ///< file:line of the weave call it is suspended in, or "-"
  std::string waited;                   ///< how long it has waited ("1.250s"), or "-"
  std::vector<std::uint64_t> frames;    ///< resume addresses, innermost first
  std::vector<std::uint64_t> awaiters;  ///< tasks awaiting it (addresses)
  bool truncated = false;               ///< a walk was cut: a bad pointer or a cap
  // Statistics, when its loop has them on (LoopSnapshot::stats) and the task has a record.
  bool has_stats = false;
  double busy_s = 0, scheduled_s = 0, idle_s = 0;
  std::uint64_t steps = 0, wakeups = 0;
};

struct LoopSnapshot {
  std::uint64_t serial = 0;
  std::int32_t tid = 0;
  std::vector<TaskRow> tasks;
  bool consistent = false;  ///< the registry did not change during the walk kept
  int attempts = 0;
  bool truncated = false;  ///< the registry walk was cut (a bad link, a cycle, the cap)
  // Statistics (loop.set_stats / WEAVE_STATS), read when the loop has them on.
  bool stats = false;
  std::uint64_t iterations = 0, ready_depth = 0, io_watches = 0;
  double lag_s = 0;
};

struct Snapshot {
  std::vector<LoopSnapshot> loops;
  bool names_consistent = false;
};

Snapshot take_snapshot(Target& target);

}  // namespace weave_tool

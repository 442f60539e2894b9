#pragma once
// The table of offsets that lets a debugger read a running weave process from outside (the
// `weave ps` / `weave pstree` program, tools/weave), as CPython's _Py_DebugOffsets does: the
// library exports one object, `weave_debug_offsets`, by an unmangled symbol and in a section of
// its own (which survives strip), holding a cookie, a version, its size, the addresses of the
// process-global roots and the offsets of every field the reader follows. The reader checks the
// cookie, the version and the size, then walks the target's memory with process_vm_readv.
//
// A layout change (a field moved, an enum renumbered) bumps kDebugOffsetsVersion; the reader
// refuses a version it does not know. The enums the reader interprets (NodeKind, FutureState,
// WaitKind, fflag) are part of the version.
//
// Consistency: every removal from a loop's registry of pending tasks, and every change to the list
// of loops, is bracketed by a generation count (odd while the change is under way, seqlock
// style); a reader whose walk saw the count move walks again. A task is registered by a push at
// the head, which a walk that began at the old head never sees: it needs no count (so a spawn
// pays two stores for it, at its end). A task's own fields (its wait, its frames) change at
// every step and are not covered: a reader validates every pointer instead.

#include <atomic>
#include <cstdint>

namespace weave::detail {
struct TaskCore;
}

namespace weave::detail::dbg {

inline constexpr char kDebugOffsetsCookie[8] = {'w', 'e', 'a', 'v', 'e', 'd', 'b', 'g'};
inline constexpr std::uint32_t kDebugOffsetsVersion = 3;
/// The section the table is placed in, so that a stripped program still has it.
#define WEAVE_DEBUG_OFFSETS_SECTION ".weave_debug"

/// Orders this thread's stores for a reader in another process (weave ps), which is outside the
/// C++ memory model: a release fence. ThreadSanitizer does not model fences (g++ refuses them
/// under -fsanitize=thread) and cannot see that reader anyway, so there a compiler barrier does.
#if defined(__SANITIZE_THREAD__)
#define WEAVE_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEAVE_UNDER_TSAN 1
#endif
#endif
inline void publish_fence() noexcept {
#ifdef WEAVE_UNDER_TSAN
  std::atomic_signal_fence(std::memory_order_release);
#else
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

/// A seqlock-style generation count: bumped before and after each change of what it guards, so
/// that it is odd while one is under way. One writer at a time (the owner's thread or a mutex).
struct SeqCount {
  std::atomic<std::uint64_t> value{0};
  /// A change begins: returns the count to hand to end().
  std::uint64_t begin() noexcept {
    const std::uint64_t g = value.load(std::memory_order_relaxed);
    value.store(g + 1, std::memory_order_relaxed);
    publish_fence();
    return g;
  }
  void end(std::uint64_t g) noexcept { value.store(g + 2, std::memory_order_release); }
};

/// One live event loop, linked into the process-global list (debug_offsets.cpp) from its
/// construction to its destruction. Embedded in LoopImpl.
struct LoopRecord {
  LoopRecord* next = nullptr;
  LoopRecord* prev = nullptr;
  /// The loop's registry head (LoopImpl::tasks_).
  TaskCore* const* tasks = nullptr;
  /// Guards removals from the registry (unregister_task, on the loop's thread).
  SeqCount generation;
  /// The loop's timer heap (a std::vector of TimerQueue::Entry), where a sleeping task's slot
  /// holds its deadline.
  const void* timers = nullptr;
  /// While the loop runs, its thread's current-task variable (a thread_local in task.cpp: the
  /// task whose step runs now, or nullptr); nullptr while it does not run. Read through it, the
  /// running task costs a step nothing.
  TaskCore* const* running = nullptr;
  std::uint64_t serial = 0;  ///< the loop's serial (LoopImpl::serial)
  std::int32_t tid = 0;      ///< the kernel thread id of the loop's thread (last run_forever)
  /// Version 3: the loop's statistics (stats.cpp's LoopDebug), once a hook made them.
  const void* stats = nullptr;
};

/// Links `r` into the process's list of loops / unlinks it (any thread, under a mutex).
void link_loop(LoopRecord* r) noexcept;
void unlink_loop(LoopRecord* r) noexcept;
/// The calling thread's kernel thread id, cached per thread.
std::int32_t this_thread_tid() noexcept;

/// The named-task table (future.cpp's extras map) for the reader: its address, published when it
/// is made, and the generation its changes bump (under the table's mutex).
extern const void* g_extras_map;
extern SeqCount g_extras_generation;

/// The table's layout: plain 64- and 32-bit fields, the same for the library and the reader.
/// Addresses are the target's; offsets are in bytes from the start of the object named.
struct DebugOffsets {
  char cookie[8];
  std::uint32_t version;
  std::uint32_t size;  ///< sizeof(DebugOffsets) in the library that wrote it

  // Roots.
  std::uint64_t loops;             ///< address of the list head (a LoopRecord*)
  std::uint64_t loops_generation;  ///< address of the list's generation (std::uint64_t)
  std::uint64_t extras_map;        ///< address of the pointer to the extras map (may hold 0)
  std::uint64_t extras_generation;

  // LoopRecord (`running` points to a pointer: read it, then the task address it holds).
  std::uint32_t loop_next, loop_tasks, loop_generation, loop_running, loop_serial, loop_tid;
  std::uint32_t loop_timers;

  // The timer heap: a std::vector (begin, end pointers) of entries; a sleeping task's
  // `waiting_on` is its slot, and the entry's `tagged` word is the task's address with bit 0
  // set. `when` is steady_clock (CLOCK_MONOTONIC) nanoseconds.
  std::uint32_t vector_begin, vector_end, timer_entry_size, timer_entry_when, timer_entry_tagged;

  // Node, FutureCore, TaskCore (a task is a TaskCore; a Node is at its start).
  std::uint32_t node_prev_w, node_next_w, node_kind, node_state, node_flags, node_wait_kind;
  std::uint32_t node_id;
  std::uint32_t future_link, future_done_waiters, future_size;
  // `wait_since` is CLOCK_MONOTONIC in milliseconds, modulo 2^32, when the wait began.
  std::uint32_t task_leaf, task_waiting_on, task_reg_next, task_wait_site, task_wait_since;
  std::uint32_t task_size;
  // A CallSite is one 64-bit word: the file's address below bit site_line_shift, the line above.
  std::uint32_t site_line_shift;

  // Coroutine frames: the first word is the resume function; the promise (a TaskCore, whose
  // `link_` is the awaiting frame) is at frame_promise. A task's root frame is the task's address
  // minus frame_promise.
  std::uint32_t frame_resume, frame_promise;

  // gather/wait/as_completed: a done-waiter that is a callback node whose function is
  // `multiwait_slot_run` is a completion slot; its owner's waiting task is the awaiter.
  std::uint64_t multiwait_slot_run;
  std::uint32_t callback_fn, multiwait_slot_owner, multiwait_task;
  // A done-waiter that is a user callback (node_flags has user_callback_flag) names at
  // callback_awaiter the future it completes on its owner's behalf, which awaits the owner: a
  // TaskGroup's parent task, shield's outer future (or 0).
  std::uint32_t user_callback_flag, callback_awaiter;

  // The extras map (libstdc++'s std::unordered_map<const FutureCore*, FutureExtras>): a singly
  // linked list of nodes from the map's before-begin node; each node holds the key and the
  // extras, whose `name` is a std::string (data pointer, size).
  std::uint32_t map_first, map_size, map_node_next, map_node_key, map_node_name;
  std::uint32_t string_data, string_size;

  // Version 3: statistics (loop.set_stats, WEAVE_STATS). LoopRecord::stats (0: none) holds
  // `stats_on` (1 while on), the loop's totals and its table of task records (a std::vector of
  // records; a record whose key is a task's address is that task's). Times are ticks: with
  // TickBase::tsc set, TSC ticks, converted by the rate between (tick0, ns0) and now (the TSC
  // and CLOCK_MONOTONIC are the machine's, the same for the reader); else nanoseconds.
  std::uint32_t loop_stats;
  std::uint32_t stats_on, stats_iterations, stats_ready_depth, stats_lag_ns, stats_io_watches;
  std::uint32_t stats_slots;  ///< the std::vector of records
  std::uint32_t rec_size, rec_key, rec_mark, rec_busy, rec_scheduled, rec_idle, rec_steps;
  std::uint32_t rec_wakeups, rec_waiting;
  std::uint64_t tick_base;  ///< address of the TickBase (tick0, ns0, tsc: three 64-bit words)
};

}  // namespace weave::detail::dbg

extern "C" {
/// The table itself (debug_offsets.cpp).
extern weave::detail::dbg::DebugOffsets weave_debug_offsets;
}

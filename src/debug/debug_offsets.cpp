// The exported table of offsets (debug_offsets.hpp) and the process-global list of live loops it
// points to. Nothing here runs while nobody looks, except linking a loop in and out.
//
// The offsets are taken with offsetof on types that are not standard-layout (the node hierarchy,
// MultiWait): g++ and clang lay single, non-virtual inheritance out as the Itanium ABI says, which
// is what the reader relies on.

#include "debug/debug_offsets.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/timer_queue.hpp"
#include "weave/coro.hpp"
#include "weave/detail/multi_wait.hpp"
#include "weave/future.hpp"

namespace weave::detail::dbg {

namespace {
std::mutex g_loops_mutex;
LoopRecord* g_loops = nullptr;
SeqCount g_loops_generation;
}  // namespace

const void* g_extras_map = nullptr;
SeqCount g_extras_generation;

// stats.cpp: the statistics' layout (its types are its own).
void fill_stats_offsets(DebugOffsets& d) noexcept;

void link_loop(LoopRecord* r) noexcept {
  std::lock_guard lock(g_loops_mutex);
  const std::uint64_t g = g_loops_generation.begin();
  r->prev = nullptr;
  r->next = g_loops;
  if (g_loops != nullptr) g_loops->prev = r;
  g_loops = r;
  g_loops_generation.end(g);
}

void unlink_loop(LoopRecord* r) noexcept {
  std::lock_guard lock(g_loops_mutex);
  const std::uint64_t g = g_loops_generation.begin();
  if (r->prev != nullptr) {
    r->prev->next = r->next;
  } else if (g_loops == r) {
    g_loops = r->next;
  }
  if (r->next != nullptr) r->next->prev = r->prev;
  r->prev = r->next = nullptr;
  g_loops_generation.end(g);
}

std::int32_t this_thread_tid() noexcept {
  thread_local std::int32_t tid = static_cast<std::int32_t>(::syscall(SYS_gettid));
  return tid;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"

/// MultiWait's private completion slot, for the reader (a friend of MultiWait).
struct DebugLayout {
  static void fill(DebugOffsets& d) noexcept {
    d.multiwait_slot_run = reinterpret_cast<std::uint64_t>(&MultiWait::Slot::run);
    d.callback_fn = offsetof(CallbackNode, fn);
    d.multiwait_slot_owner = offsetof(MultiWait::Slot, owner);
    d.multiwait_task = offsetof(MultiWait, task_);
    d.user_callback_flag = UserCallbackBase::kUserCallbackFlag;
    d.callback_awaiter = offsetof(UserCallbackBase, awaiter);
  }
};

namespace {

template <class T>
std::uint64_t address(const T* p) noexcept {
  return reinterpret_cast<std::uint64_t>(p);
}

/// The promise's offset in a coroutine frame: the compiler's layout, the same for every frame
/// whose promise has a TaskCore's alignment.
std::uint32_t promise_offset() noexcept {
  alignas(std::max_align_t) static unsigned char probe[64];
  auto h = std::coroutine_handle<Promise<void>>::from_address(probe);
  return static_cast<std::uint32_t>(reinterpret_cast<unsigned char*>(&h.promise()) - probe);
}

// libstdc++'s unordered_map: buckets, bucket count, the before-begin node (its `next` is the
// first node), the element count, ...; a node is its `next`, then the value (no cached hash for a
// pointer key).
using ExtrasMap = std::unordered_map<const FutureCore*, FutureExtras>;
static_assert(sizeof(ExtrasMap) == 56, "not the libstdc++ unordered_map this reader knows");
static_assert(sizeof(std::string) == 32, "not the libstdc++ string this reader knows");
static_assert(sizeof(std::vector<TimerQueue::Entry>) == 3 * sizeof(void*));
static_assert(std::is_same_v<Clock, std::chrono::steady_clock> &&
              std::is_same_v<Clock::duration, std::chrono::nanoseconds>);

void fill(DebugOffsets& d) noexcept {
  for (std::size_t i = 0; i < sizeof d.cookie; ++i) d.cookie[i] = kDebugOffsetsCookie[i];
  d.version = kDebugOffsetsVersion;
  d.size = sizeof(DebugOffsets);
  d.loops = address(&g_loops);
  d.loops_generation = address(&g_loops_generation.value);
  d.extras_map = address(&g_extras_map);
  d.extras_generation = address(&g_extras_generation.value);

  d.loop_next = offsetof(LoopRecord, next);
  d.loop_tasks = offsetof(LoopRecord, tasks);
  d.loop_generation = offsetof(LoopRecord, generation);
  d.loop_running = offsetof(LoopRecord, running);
  d.loop_serial = offsetof(LoopRecord, serial);
  d.loop_tid = offsetof(LoopRecord, tid);
  d.loop_timers = offsetof(LoopRecord, timers);
  d.vector_begin = 0;
  d.vector_end = sizeof(void*);
  d.timer_entry_size = sizeof(TimerQueue::Entry);
  d.timer_entry_when = offsetof(TimerQueue::Entry, when);
  d.timer_entry_tagged = offsetof(TimerQueue::Entry, tagged);

  d.node_prev_w = offsetof(Node, prev_w);
  d.node_next_w = offsetof(Node, next_w);
  d.node_kind = offsetof(Node, kind);
  d.node_state = offsetof(Node, state);
  d.node_flags = offsetof(Node, flags);
  d.node_wait_kind = offsetof(Node, wait_kind);
  d.node_id = offsetof(Node, id);
  d.future_link = offsetof(FutureCore, link_);
  d.future_done_waiters = offsetof(FutureCore, done_waiters);
  d.future_size = sizeof(FutureCore);
  d.task_leaf = offsetof(TaskCore, leaf);
  d.task_waiting_on = offsetof(TaskCore, waiting_on);
  d.task_reg_next = offsetof(TaskCore, reg_next);
  d.task_wait_site = offsetof(TaskCore, wait_site);
  d.task_wait_since = offsetof(TaskCore, wait_since);
  d.task_size = sizeof(TaskCore);
  d.site_line_shift = CallSite::kLineShift;

  d.frame_resume = 0;
  d.frame_promise = promise_offset();
  DebugLayout::fill(d);

  d.map_first = 2 * sizeof(void*);
  d.map_size = 3 * sizeof(void*);
  d.map_node_next = 0;
  d.map_node_key = sizeof(void*);
  d.map_node_name = 2 * sizeof(void*) + offsetof(FutureExtras, name);
  d.string_data = 0;
  d.string_size = sizeof(void*);

  d.loop_stats = offsetof(LoopRecord, stats);
  fill_stats_offsets(d);
}

#pragma GCC diagnostic pop

}  // namespace

}  // namespace weave::detail::dbg

extern "C" {
// Filled before main (the first loop cannot exist earlier); a reader that finds no cookie yet
// reports the process as not (yet) a weave process.
__attribute__((used, section(WEAVE_DEBUG_OFFSETS_SECTION)))
weave::detail::dbg::DebugOffsets weave_debug_offsets;
}

namespace weave::detail::dbg {
namespace {
[[maybe_unused]] const bool g_filled = (fill(weave_debug_offsets), true);
}
}  // namespace weave::detail::dbg

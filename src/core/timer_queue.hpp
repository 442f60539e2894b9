#pragma once
// The loop's timers: a 4-ary min-heap ordered by (deadline, sequence), so that timers with equal
// deadlines fire in the order they were scheduled.
//
// Each entry carries its key (deadline and sequence) beside the node it fires, so that sifting
// compares keys in one contiguous array instead of loading a node per comparison: with a million
// timers the nodes are scattered and each load would be a cache miss. The node only learns its
// slot (one store per move), so that cancelling (a withdrawn sleep, a cancelled TimerHandle)
// removes the entry at once in O(log n) instead of leaving a tombstone: a million sleeping tasks
// cost their entries, nothing more.
//
// Two kinds of node sit in the heap:
// - a TimerNode (call_later/call_at): its slot is `heap_index`; when due it is queued and runs
//   its callback;
// - a TaskCore asleep in sleep(d > 0): the task is its own timer, so a sleep carries no node of
//   its own. Its slot is kept in `waiting_on` while `wait_kind` is Timer; when due the task is
//   queued with `wait_kind` TimerFired, and running that node only queues the task's step (see
//   LoopImpl::dispatch), so the step comes one iteration after the deadline, as asyncio's
//   call_later + future.set_result does.

#include <cstdint>
#include <vector>

#include "weave/clock.hpp"
#include "weave/detail/future_core.hpp"
#include "weave/detail/node.hpp"

namespace weave::detail {

struct TimerNode : CallbackNode {
  static constexpr std::uint32_t kNotQueued = ~std::uint32_t{0};
  explicit TimerNode(Fn fn) noexcept : CallbackNode(fn) {}
  std::uint32_t heap_index = kNotQueued;
  bool queued() const noexcept { return heap_index != kNotQueued; }
};

/// The slot of a sleeping task, kept in `waiting_on` (see the file comment).
inline std::uint32_t task_timer_slot(const TaskCore* t) noexcept {
  return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(t->waiting_on));
}

class TimerQueue {
 public:
  struct Entry {
    Clock::time_point when;
    std::uint64_t seq;
    /// The node, its lowest bit set for a task: moving an entry then stores the slot without
    /// loading the node first (that load would be a cache miss per level of the heap).
    std::uintptr_t tagged;
    Node* node() const noexcept { return reinterpret_cast<Node*>(tagged & ~std::uintptr_t{1}); }
  };

  bool empty() const noexcept { return heap_.empty(); }
  /// The heap itself, for outside readers (debug_offsets.hpp: a sleeping task's deadline).
  const std::vector<Entry>* heap_address() const noexcept { return &heap_; }
  std::size_t size() const noexcept { return heap_.size(); }
  const Entry& top() const noexcept { return heap_.front(); }

  void push(TimerNode* n, Clock::time_point when) {
    push_tagged(reinterpret_cast<std::uintptr_t>(static_cast<Node*>(n)), when);
  }
  void push(TaskCore* t, Clock::time_point when) {
    push_tagged(reinterpret_cast<std::uintptr_t>(static_cast<Node*>(t)) | 1, when);
  }

  void remove(TimerNode* n) noexcept {
    remove_at(n->heap_index);
    n->heap_index = TimerNode::kNotQueued;
  }
  void remove(TaskCore* t) noexcept { remove_at(task_timer_slot(t)); }

  /// Takes the earliest entry out; a TimerNode is marked not queued, a task's slot is left stale
  /// (its wait_kind is changed by the caller).
  Node* pop() noexcept {
    Node* n = heap_.front().node();
    remove_at(0);
    if (n->kind != NodeKind::Task) static_cast<TimerNode*>(n)->heap_index = TimerNode::kNotQueued;
    return n;
  }

  void clear() noexcept {
    for (const Entry& e : heap_) {
      if ((e.tagged & 1) == 0)
        static_cast<TimerNode*>(e.node())->heap_index = TimerNode::kNotQueued;
    }
    heap_.clear();
  }

 private:
  static bool before(const Entry& a, const Entry& b) noexcept {
    return a.when < b.when || (a.when == b.when && a.seq < b.seq);
  }
  void place(std::uint32_t i, const Entry& e) noexcept {
    heap_[i] = e;
    if ((e.tagged & 1) != 0) {
      static_cast<TaskCore*>(e.node())->waiting_on = reinterpret_cast<void*>(std::uintptr_t{i});
    } else {
      static_cast<TimerNode*>(e.node())->heap_index = i;
    }
  }
  void push_tagged(std::uintptr_t tagged, Clock::time_point when) {
    heap_.push_back(Entry{when, next_seq_++, tagged});
    sift_up(static_cast<std::uint32_t>(heap_.size() - 1));
  }
  void remove_at(std::uint32_t i) noexcept {
    const auto last = static_cast<std::uint32_t>(heap_.size() - 1);
    if (i != last) {
      const Entry moved = heap_[last];
      heap_.pop_back();
      place(i, moved);
      if (i > 0 && before(moved, heap_[(i - 1) / kArity])) {
        sift_up(i);
      } else {
        sift_down(i);
      }
    } else {
      heap_.pop_back();
    }
  }
  // A 4-ary heap: half the depth of a binary one, and the four children of a node share one or
  // two cache lines, so a pop from a million timers misses the cache about half as often.
  static constexpr std::uint32_t kArity = 4;

  void sift_up(std::uint32_t i) noexcept {
    const Entry e = heap_[i];
    while (i > 0) {
      std::uint32_t parent = (i - 1) / kArity;
      if (!before(e, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }
  void sift_down(std::uint32_t i) noexcept {
    const auto size = static_cast<std::uint32_t>(heap_.size());
    const Entry e = heap_[i];
    for (;;) {
      const std::uint32_t first = kArity * i + 1;
      if (first >= size) break;
      const std::uint32_t end = first + kArity < size ? first + kArity : size;
      std::uint32_t child = first;
      for (std::uint32_t c = first + 1; c < end; ++c) {
        if (before(heap_[c], heap_[child])) child = c;
      }
      if (!before(heap_[child], e)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, e);
  }

  std::vector<Entry> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace weave::detail

#pragma once
// The loop's timers: a binary min-heap of intrusive TimerNodes ordered by (deadline, sequence),
// so that timers with equal deadlines fire in the order they were scheduled. Each node knows its
// heap slot, so cancelling (a withdrawn sleep, a cancelled TimerHandle) removes it at once in
// O(log n) instead of leaving a tombstone: a million sleeping tasks cost their nodes, nothing more.

#include <cstdint>
#include <vector>

#include "weave/clock.hpp"
#include "weave/detail/node.hpp"

namespace weave::detail {

struct TimerNode : CallbackNode {
  static constexpr std::uint32_t kNotQueued = ~std::uint32_t{0};
  explicit TimerNode(Fn fn) noexcept : CallbackNode(fn) {}
  Clock::time_point when{};
  std::uint64_t seq = 0;
  std::uint32_t heap_index = kNotQueued;
  bool queued() const noexcept { return heap_index != kNotQueued; }
};

class TimerQueue {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  TimerNode* top() const noexcept { return heap_.front(); }

  void push(TimerNode* n) {
    n->seq = next_seq_++;
    n->heap_index = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back(n);
    sift_up(n->heap_index);
  }

  void remove(TimerNode* n) noexcept {
    std::uint32_t i = n->heap_index;
    n->heap_index = TimerNode::kNotQueued;
    TimerNode* last = heap_.back();
    heap_.pop_back();
    if (last == n) return;
    place(i, last);
    sift_down(i);
    sift_up(last->heap_index);
  }

  TimerNode* pop() noexcept {
    TimerNode* n = heap_.front();
    remove(n);
    return n;
  }

  void clear() noexcept {
    for (TimerNode* n : heap_) n->heap_index = TimerNode::kNotQueued;
    heap_.clear();
  }

 private:
  static bool before(const TimerNode* a, const TimerNode* b) noexcept {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
  }
  void place(std::uint32_t i, TimerNode* n) noexcept {
    heap_[i] = n;
    n->heap_index = i;
  }
  void sift_up(std::uint32_t i) noexcept {
    TimerNode* n = heap_[i];
    while (i > 0) {
      std::uint32_t parent = (i - 1) / 2;
      if (!before(n, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, n);
  }
  void sift_down(std::uint32_t i) noexcept {
    const auto size = static_cast<std::uint32_t>(heap_.size());
    TimerNode* n = heap_[i];
    for (;;) {
      std::uint32_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && before(heap_[child + 1], heap_[child])) ++child;
      if (!before(heap_[child], n)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, n);
  }

  std::vector<TimerNode*> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace weave::detail

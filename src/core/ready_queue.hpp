#pragma once
// The loop's ready queue: an intrusive singly-linked FIFO of Nodes. run_once() takes the whole
// queue as one batch before running it, which is what makes "a callback scheduled while the queue
// is being run waits for the next iteration" hold without counting.

#include "weave/detail/node.hpp"

namespace weave::detail {

class ReadyQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push(Node* n) noexcept {
    n->next_ready = nullptr;
    if (tail_ == nullptr) {
      head_ = n;
    } else {
      tail_->next_ready = n;
    }
    tail_ = n;
  }

  /// Detaches every queued node; the caller walks them through next_ready.
  Node* take_all() noexcept {
    Node* batch = head_;
    head_ = tail_ = nullptr;
    return batch;
  }

 private:
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
};

}  // namespace weave::detail

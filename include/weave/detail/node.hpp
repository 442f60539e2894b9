#pragma once
// The intrusive nodes every scheduling structure is made of. A Node can sit in the loop's ready
// queue (through `next_ready`) and, at another time, in one waiter list (through
// `prev_w`/`next_w`): a future's done-waiters, a lock's or queue's waiters. Nothing is allocated to
// wait or to wake.
//
// Invariant: a node is in at most one waiter list and in the ready queue at most once. Waking a
// waiter unlinks it from its list before it is queued, so no node is queued twice.

#include <cstddef>
#include <cstdint>

namespace weave::detail {

/// How the loop runs a node it takes from the ready queue.
enum class NodeKind : std::uint8_t {
  Task,      ///< a TaskCore: step its coroutine
  Callback,  ///< a CallbackNode: call its function
};

struct Node {
  Node* next_ready = nullptr;  ///< link in the loop's ready queue
  Node* prev_w = nullptr;      ///< links in one waiter list (circular)
  Node* next_w = nullptr;
  NodeKind kind;
  // Small fields owned by the derived type, kept here so that they pack into this node's words.
  std::uint8_t state = 0;
  std::uint8_t flags = 0;
  std::uint8_t wait_kind = 0;
  std::uint32_t id = 0;

  explicit Node(NodeKind k) noexcept : kind(k) {}
  bool linked() const noexcept { return next_w != nullptr; }
};

/// A node whose running is a plain function call; it outlives its queueing (the owner frees it).
struct CallbackNode : Node {
  using Fn = void (*)(CallbackNode*);
  Fn fn;
  explicit CallbackNode(Fn f) noexcept : Node(NodeKind::Callback), fn(f) {}
};

/// A FIFO list of waiters, circular and doubly linked; one pointer wide so that it fits in a
/// task or a primitive without cost. Removal of any member is O(1).
class WaiterList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  Node* front() const noexcept { return head_; }

  void push_back(Node* n) noexcept {
    if (head_ == nullptr) {
      n->prev_w = n->next_w = n;
      head_ = n;
      return;
    }
    Node* tail = head_->prev_w;
    n->prev_w = tail;
    n->next_w = head_;
    tail->next_w = n;
    head_->prev_w = n;
  }

  void remove(Node* n) noexcept {
    if (n->next_w == n) {
      head_ = nullptr;
    } else {
      n->prev_w->next_w = n->next_w;
      n->next_w->prev_w = n->prev_w;
      if (head_ == n) head_ = n->next_w;
    }
    n->prev_w = n->next_w = nullptr;
  }

  Node* pop_front() noexcept {
    Node* n = head_;
    if (n != nullptr) remove(n);
    return n;
  }

  std::size_t size() const noexcept {
    std::size_t count = 0;
    for (Node* n = head_; n != nullptr; n = n->next_w == head_ ? nullptr : n->next_w) ++count;
    return count;
  }

  template <class Fn>
  void for_each(Fn&& fn) const {
    for (Node* n = head_; n != nullptr; n = n->next_w == head_ ? nullptr : n->next_w) fn(n);
  }

 private:
  Node* head_ = nullptr;
};

}  // namespace weave::detail

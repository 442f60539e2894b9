#pragma once
// One task waiting on many futures at once (gather, wait, as_completed). The state lives on the
// heap because it must outlive its awaiter: a child's completion may already sit in the ready
// queue when the awaiting coroutine moves on. The owner calls abandon() when it is done with the
// state; the state frees itself once no completion slot is pending any more.

#include <coroutine>
#include <cstddef>
#include <memory>
#include <vector>

#include "weave/detail/future_core.hpp"

namespace weave::detail {

namespace dbg {
struct DebugLayout;  // debug_offsets.cpp: the slot's layout for outside readers
}

/// Ends a task's wait as cancelled: it resumes with CancelledError at its await.
void wake_cancelled(TaskCore* task) noexcept;

class MultiWait : public Withdrawable {
  friend struct dbg::DebugLayout;

 public:
  /// Takes a reference to each child for the state's lifetime.
  explicit MultiWait(std::vector<FutureCore*> children);
  MultiWait(const MultiWait&) = delete;
  MultiWait& operator=(const MultiWait&) = delete;

  /// Registers a completion slot on every child. A child done already has its slot queued, or,
  /// with `done_now`, seen at once, in order (asyncio 3.12's gather: children that finished
  /// eagerly complete the gather before it is awaited, with no trip through the ready queue).
  void arm(bool done_now = false);
  /// Suspends `task` on this state until finish(); `site`, if given, is the caller's weave call
  /// (gather, wait, as_completed), kept for call graphs while the task waits.
  void suspend(TaskCore* task, std::coroutine_handle<> h, const CallSite* site = nullptr);
  /// The owner lets go; pending slots keep the state alive until they ran. With `retrieved`,
  /// whatever the children raise from now on counts as handed over (never reported).
  void abandon(bool retrieved = false) noexcept;
  bool finished() const noexcept { return finished_; }
  TaskCore* task() const noexcept { return task_; }
  const std::vector<FutureCore*>& children() const noexcept { return children_; }
  /// For call graphs: the task suspended on the MultiWait whose completion slot `n` is (a node in
  /// a child's done-waiters), or nullptr when `n` is no slot or nobody waits.
  static TaskCore* waiter_of(const Node* n) noexcept;

 protected:
  virtual ~MultiWait();
  /// Child `index` is done (called once per child, in completion order).
  virtual void on_done(std::size_t index) = 0;
  /// Wakes the waiting task, if any; later completions only update the state.
  void finish() noexcept;

  std::vector<FutureCore*> children_;
  std::size_t remaining_;  ///< children not yet seen done
  TaskCore* task_ = nullptr;

 private:
  struct Slot : CallbackNode {
    Slot() noexcept : CallbackNode(&run) {}
    static void run(CallbackNode* n);
    MultiWait* owner = nullptr;
    std::size_t index = 0;
  };

  std::unique_ptr<Slot[]> slots_;
  std::size_t outstanding_ = 0;  ///< slots linked in a child or queued, not yet run
  bool finished_ = false;
  bool abandoned_ = false;
};

}  // namespace weave::detail

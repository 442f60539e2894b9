// The completion rules of gather, wait and as_completed (asyncio.tasks' _GatheringFuture,
// _wait and as_completed), on top of MultiWait.

#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::detail {

void GatherWait::on_done(std::size_t index) {
  FutureCore* child = children_[index];
  if (finished()) {
    child->flags |= fflag::kRetrieved;
    return;
  }
  if (!settled_) {
    if (child->cancelled()) {
      error = child->exception ? child->exception : make_cancelled(child);
      finish();
      return;
    }
    if (child->exception) {
      child->flags |= fflag::kRetrieved;
      error = child->exception;
      finish();
      return;
    }
  } else {
    child->flags |= fflag::kRetrieved;
  }
  if (remaining_ == 0) {
    // A gather whose cancel reached a child fails with CancelledError even when settled.
    if (cancel_requested_) error = make_cancelled(child);
    finish();
  }
}

bool GatherWait::withdraw(std::string_view msg) {
  if (finished()) return false;
  bool any = false;
  for (FutureCore* child : children_) {
    if (cancel_any(child, msg)) any = true;
  }
  if (any) cancel_requested_ = true;
  return any;
}

void WaitState::on_done(std::size_t index) {
  if (finished()) return;
  FutureCore* child = children_[index];
  const bool failed = !child->cancelled() && child->exception;
  if (when_ == ReturnWhen::FIRST_COMPLETED || remaining_ == 0 ||
      (when_ == ReturnWhen::FIRST_EXCEPTION && failed)) {
    finish();
  }
}

namespace {
bool withdraw_waiter(TaskCore*& task) {
  if (task == nullptr) return false;
  TaskCore* t = task;
  task = nullptr;
  wake_cancelled(t);
  return true;
}
}  // namespace

bool WaitState::withdraw(std::string_view) {
  return withdraw_waiter(task_);
}

void CompletionQueue::on_done(std::size_t index) {
  // asyncio: once the timeout passed, every remaining step raises TimeoutError, even for a
  // task that finishes later.
  if (expired_) return;
  done_.push_back(index);
  if (task_ != nullptr) finish();
}

bool CompletionQueue::withdraw(std::string_view) {
  return withdraw_waiter(task_);
}

std::optional<std::size_t> CompletionQueue::pop() {
  if (next_ < done_.size()) return done_[next_++];
  return std::nullopt;
}

void CompletionQueue::expire() noexcept {
  expired_ = true;
  if (task_ != nullptr) finish();
}

namespace {
struct WaitAwaiter {
  WaitState* state;
  const CallSite* site;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { state->suspend(require_task("wait"), h, site); }
  void await_resume() const { checkpoint(current_task_core()); }
};
}  // namespace

}  // namespace weave::detail

namespace weave {

Coro<WaitResult> wait(std::vector<TaskRef> tasks, ReturnWhen return_when,
                      std::optional<Clock::duration> timeout, detail::CallSite site) {
  if (tasks.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  std::vector<detail::FutureCore*> cores;
  cores.reserve(tasks.size());
  for (const TaskRef& t : tasks) cores.push_back(t.core());
  co_await detail::wait_cores(std::move(cores), return_when, timeout, &site);
  WaitResult result;
  for (TaskRef& t : tasks) (t.done() ? result.done : result.pending).push_back(std::move(t));
  co_return result;
}

namespace detail {
Coro<void> wait_cores(std::vector<FutureCore*> cores, ReturnWhen return_when,
                      std::optional<Clock::duration> timeout, const CallSite* site) {
  struct Guard {
    WaitState* state;
    std::optional<TimerHandle> timer;
    ~Guard() {
      if (timer) timer->cancel();
      state->abandon();
    }
  } guard{new WaitState(std::move(cores), return_when), std::nullopt};
  guard.state->arm();
  if (timeout) {
    WaitState* s = guard.state;
    guard.timer = get_running_loop().call_later(*timeout, [s] { s->expire(); });
  }
  WaitAwaiter waiting{guard.state, site};
  co_await waiting;
}
}  // namespace detail

}  // namespace weave

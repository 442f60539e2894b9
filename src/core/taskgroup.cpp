// TaskGroup's bookkeeping, after asyncio.taskgroups (3.12+): the parent's cancel/uncancel
// accounting tells the group's own cancellation (after a child failed) from one coming from
// outside, which must propagate.

#include "weave/taskgroup.hpp"

#include <algorithm>

namespace weave {

void TaskGroup::enter(const detail::CallSite* site) {
  if (entered_) throw RuntimeError("TaskGroup has already been entered");
  site_ = site;
  parent_ = current_task();
  if (!parent_) throw RuntimeError("TaskGroup cannot determine the parent task");
  entered_ = true;
}

void TaskGroup::check_open() const {
  if (!entered_) throw RuntimeError("TaskGroup has not been entered");
  if (exiting_ && tasks_.empty()) throw RuntimeError("TaskGroup is finished");
  if (aborting_) throw RuntimeError("TaskGroup is shutting down");
}

void TaskGroup::track(const TaskRef& task) {
  task.core()->flags |= detail::fflag::kRetrieved;  // the group collects the failure itself
  if (task.done()) {                                // an eager child that finished in create_task
    on_task_done(task);
    return;
  }
  tasks_.push_back(task);
  const CallbackId id =
      TaskRef(task).add_done_callback([this](const TaskRef& t) { on_task_done(t); });
  detail::set_callback_awaiter(id, parent_->core());  // for call graphs: the child's awaiter
}

void TaskGroup::abort() {
  aborting_ = true;
  for (TaskRef& t : tasks_) {
    if (!t.done()) t.cancel();
  }
}

void TaskGroup::on_task_done(const TaskRef& task) {
  tasks_.erase(std::remove(tasks_.begin(), tasks_.end(), task), tasks_.end());
  if (on_completed_ && tasks_.empty() && !on_completed_->done()) on_completed_->set_result();
  if (task.cancelled()) return;
  std::exception_ptr error = task.core()->exception;
  if (!error) return;
  errors_.push_back(error);
  if (parent_->done()) {
    get_running_loop().call_exception_handler(
        {"Task has errored out but its parent task is already completed", error, task});
    return;
  }
  if (!aborting_ && !parent_cancel_requested_) {
    // Cancel the body too, and remember to take that cancellation back in exit().
    abort();
    parent_cancel_requested_ = true;
    parent_->cancel();
  }
}

Coro<void> TaskGroup::exit(std::exception_ptr body_error) {
  exiting_ = true;
  bool body_cancelled = false;
  if (body_error) {
    try {
      std::rethrow_exception(body_error);
    } catch (const CancelledError&) {
      body_cancelled = true;
    } catch (...) {
    }
  }
  std::exception_ptr propagate_cancel = body_cancelled ? body_error : nullptr;
  if (body_error && !aborting_) abort();

  while (!tasks_.empty()) {
    if (!on_completed_) on_completed_ = get_running_loop().create_future<void>();
    std::exception_ptr cancelled;
    try {
      auto waiting = on_completed_->operator co_await();
      waiting.site = site_;  // call graphs show task_group()'s line on its caller
      co_await waiting;
    } catch (const CancelledError&) {
      cancelled = std::current_exception();
    }
    if (cancelled && !aborting_) {
      // The parent is being cancelled from outside while children still run.
      propagate_cancel = cancelled;
      abort();
    }
    on_completed_.reset();
  }

  // Only now: a child may fail, and cancel the parent, while the loop above waits.
  if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate_cancel = nullptr;
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (body_error && !body_cancelled) errors_.push_back(body_error);
  if (!errors_.empty()) {
    if (parent_->cancelling() > 0) {
      // Keep the parent's cancel count stable for an outside cancellation (3.13).
      parent_->uncancel();
      parent_->cancel();
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
  }
}

}  // namespace weave

#pragma once
// The one suspension point of the low-level socket API: a task waits until an fd is ready in one
// direction. Readiness is awaited only after the syscall said EAGAIN, as asyncio's sock_* do.
// Cancellation withdraws the watch before CancelledError is raised, so nothing stays armed.

#include <coroutine>
#include <string>
#include <string_view>

#include "core/loop_impl.hpp"
#include "io/backend.hpp"
#include "weave/detail/future_core.hpp"
#include "weave/detail/multi_wait.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

class ReadyWait final : public Withdrawable, public io::ReadyListener {
 public:
  /// `op` names the wait on a trace's timeline (the sock_* call); `site`, the sock_* call's
  /// caller, names it in call graphs (it lives in the sock_* call's frame).
  ReadyWait(LoopImpl& loop, int fd, io::Interest interest, const char* op,
            const CallSite* site = nullptr) noexcept
      : loop_(loop), fd_(fd), interest_(interest), site_(site) {
    trace_.op = op;  // kept where the trace's slice keeps it
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = require_task("wait for socket readiness");
    if (loop_.backend_->watched(fd_, interest_)) {
      throw RuntimeError("another coroutine or callback is already waiting for fd " +
                         std::to_string(fd_) +
                         (interest_ == io::Interest::Read ? " to be readable" : " to be writable"));
    }
    loop_.backend_->watch(fd_, interest_, this);  // may throw: the task resumes with the error
    begin_wait(task_, h, WaitKind::Custom, static_cast<Withdrawable*>(this), site_);
    if ((loop_.hooks & dbg::kTrace) != 0) [[unlikely]]
      dbg::trace_io_begin(trace_, trace_.op, fd_);
  }
  void await_resume() const { checkpoint(task_); }

  void on_ready() noexcept override {
    loop_.backend_->unwatch(fd_, interest_);
    dbg::trace_io_end(trace_);
    wake(task_);
  }
  bool withdraw(std::string_view) override {
    loop_.backend_->unwatch(fd_, interest_);
    dbg::trace_io_end(trace_);
    wake_cancelled(task_);
    return true;
  }

 private:
  LoopImpl& loop_;
  int fd_;
  io::Interest interest_;
  TaskCore* task_ = nullptr;
  const CallSite* site_;
  dbg::IoWaitTrace trace_;
};

}  // namespace weave::detail

// weave::run and Runner, after asyncio.runners: the main task runs to completion, then every
// task left over is cancelled and awaited, failures of those are reported through the exception
// handler, and the loop is closed.

#include <cstdlib>
#include <cstring>

#include "core/loop_impl.hpp"
#include "proc/signals.hpp"
#include "weave/run.hpp"

namespace weave {

namespace {
Coro<void> await_all(std::vector<TaskRef> tasks) {
  for (const TaskRef& t : tasks) {
    try {
      co_await t;
    } catch (...) {
      // Reported below, from each task's own state.
    }
  }
}

bool debug_from_env() {
  const char* v = std::getenv("WEAVE_DEBUG");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}
}  // namespace

Runner::Runner(RunOptions opts) : opts_(opts) {}

Runner::~Runner() {
  try {
    close();
  } catch (...) {
    // Destructors do not throw; close() reports through the exception handler.
  }
}

EventLoop& Runner::get_loop() {
  check_usable();
  return *loop_;
}

void Runner::check_usable() {
  if (closed_) throw RuntimeError("Runner is closed");
  if (detail::running_loop_or_null() != nullptr) {
    throw RuntimeError("Runner.run() cannot be called from a running event loop");
  }
  if (!loop_) {
    loop_.emplace();
    loop_->set_debug(opts_.debug.value_or(debug_from_env()));
  }
}

void Runner::run_main(const TaskRef& task) {
  detail::SigintGuard sigint(*loop_, task);  // asyncio.Runner's Ctrl-C handling
  try {
    loop_->run_until_complete(task);
  } catch (const CancelledError&) {
    TaskRef main = task;
    if (sigint.interrupts() > 0 && main.uncancel() == 0) throw KeyboardInterrupt();
    throw;
  }
}

void Runner::close() {
  if (closed_) return;
  closed_ = true;
  if (!loop_) return;
  std::vector<TaskRef> leftovers;
  loop_->impl().for_each_task([&](detail::TaskCore* t) { leftovers.emplace_back(t); });
  if (!leftovers.empty()) {
    for (TaskRef& t : leftovers) t.cancel();
    loop_->run_until_complete(await_all(leftovers));
    for (TaskRef& t : leftovers) {
      if (t.cancelled() || !t.core()->exception) continue;
      loop_->call_exception_handler(
          {"unhandled exception during weave::run() shutdown", t.exception(), t});
    }
  }
  if (loop_->impl().asyncgens != nullptr) loop_->run_until_complete(loop_->shutdown_asyncgens());
  loop_->shutdown_default_executor();
  loop_->close();
}

}  // namespace weave

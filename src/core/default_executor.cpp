// The loop's default executor (asyncio's loop._default_executor) and the thread-safe links that
// executors' threads use to reach the loop.
//
// The default executor is a concurrent::ThreadPoolExecutor created on the first
// run_in_executor(nullptr, ...) or to_thread(), or one the user set. shutdown_default_executor()
// refuses new work from then on and joins the threads, either blocking the caller or, awaited,
// from a helper thread while the loop keeps running (asyncio runs executor.shutdown(wait=True)
// in a thread too). close() only asks the executor to shut down without waiting, as asyncio's
// loop.close() does; the loop's destructor drops its reference, and an owned pool joins then.

#include <thread>

#include "core/loop_impl.hpp"
#include "weave/concurrent.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave {

namespace detail {

namespace {

// Shuts the default executor down in this thread and waits for its threads.
void shutdown_blocking(LoopImpl& l) {
  l.executor_shutdown_called = true;
  l.join_shutdown_thread();
  if (l.default_executor) l.default_executor->shutdown(true);
}

Coro<void> shutdown_awaited(EventLoop& loop) {
  LoopImpl& l = loop.impl();
  l.executor_shutdown_called = true;
  if (!l.default_executor) co_return;
  l.join_shutdown_thread();
  concurrent::Future<void> done;
  l.shutdown_thread = std::thread([executor = l.default_executor, done] {
    try {
      executor->shutdown(true);
    } catch (...) {
      // Joining failed (called from one of its own workers): the threads end on their own.
    }
    if (done.set_running_or_notify_cancel()) done.set_result();
  });
  co_await wrap_future(done, loop);
  l.join_shutdown_thread();
}

}  // namespace

LoopLink loop_link(EventLoop& loop) {
  return loop.impl().entry;
}

bool post_to_loop(const LoopLink& link, SmallFunction fn) {
  return link->post(fn);
}

concurrent::Executor& default_executor(EventLoop& loop) {
  LoopImpl& l = loop.impl();
  if (l.closed) throw RuntimeError("Event loop is closed");
  if (l.executor_shutdown_called) throw RuntimeError("Executor shutdown has been called");
  if (!l.default_executor) {
    l.default_executor = std::make_shared<concurrent::ThreadPoolExecutor>(0, "weave");
  }
  return *l.default_executor;
}

void LoopImpl::join_shutdown_thread() noexcept {
  if (shutdown_thread.joinable()) shutdown_thread.join();
}

void LoopImpl::close_default_executor() noexcept {
  if (!default_executor) return;
  try {
    default_executor->shutdown(false);
  } catch (...) {
    // shutdown(wait=false) joins nothing; there is nothing it could report.
  }
}

}  // namespace detail

void EventLoop::set_default_executor(concurrent::Executor& executor) {
  impl_->default_executor =
      std::shared_ptr<concurrent::Executor>(&executor, [](concurrent::Executor*) {});
}

void EventLoop::set_default_executor(concurrent::Executor* executor) {
  if (executor == nullptr) {
    impl_->default_executor.reset();
    return;
  }
  set_default_executor(*executor);
}

void EventLoop::set_default_executor(std::shared_ptr<concurrent::Executor> executor) {
  impl_->default_executor = std::move(executor);
}

ExecutorShutdown::~ExecutorShutdown() {
  if (loop_ == nullptr) return;
  try {
    detail::shutdown_blocking(loop_->impl());
  } catch (...) {
    // Only a shutdown from one of the executor's own threads fails; its threads end anyway.
  }
}

Coro<void>::Awaiter ExecutorShutdown::operator co_await() & {
  if (loop_ != nullptr) coro_ = detail::shutdown_awaited(*std::exchange(loop_, nullptr));
  return coro_.operator co_await();
}

}  // namespace weave

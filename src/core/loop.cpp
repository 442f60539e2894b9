// EventLoop's public members: running, stopping, closing, scheduling callbacks, the exception
// handler. The iteration itself is in event_loop.cpp.

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

namespace {
// The loops alive in the process. A done task or a future keeps a plain pointer to its loop and
// its handle may outlive that loop (result() still reads); the rare paths that reach the loop
// from such a handle (the never-retrieved report) look here first. Never destroyed, so that a
// loop destroyed during static destruction still finds it.
std::mutex g_loops_mutex;
std::vector<const EventLoop*>& live_loops() {
  static auto* loops = new std::vector<const EventLoop*>;
  return *loops;
}
}  // namespace

bool loop_alive(const EventLoop* loop) noexcept {
  std::lock_guard lock(g_loops_mutex);
  const auto& loops = live_loops();
  return std::find(loops.begin(), loops.end(), loop) != loops.end();
}

}  // namespace weave::detail

namespace weave {

using detail::HandleNode;
using detail::LoopImpl;

EventLoop::EventLoop() : impl_(std::make_unique<LoopImpl>(*this)) {
  std::lock_guard lock(detail::g_loops_mutex);
  detail::live_loops().push_back(this);
}

EventLoop::~EventLoop() {
  {
    std::lock_guard lock(detail::g_loops_mutex);
    auto& loops = detail::live_loops();
    loops.erase(std::find(loops.begin(), loops.end(), this));
  }
  if (impl_->debug) [[unlikely]]
    detail::dbg::on_loop_destroyed(*impl_, impl_->closed);
  impl_.reset();  // frees the pending tasks, whose reports must not find this loop any more
}

void EventLoop::check_runnable() const {
  const LoopImpl& l = *impl_;
  if (l.closed) throw RuntimeError("Event loop is closed");
  if (l.running) throw RuntimeError("This event loop is already running");
  if (detail::running_loop_or_null() != nullptr) {
    throw RuntimeError("Cannot run the event loop while another loop is running");
  }
}

void EventLoop::run_forever() {
  check_runnable();
  LoopImpl& l = *impl_;
  l.running = true;
  l.thread = std::this_thread::get_id();
  l.record.tid = detail::dbg::this_thread_tid();
  l.record.running = detail::current_task_slot();
  l.sync_trace_bit();
  detail::set_running(this);
  if (l.hooks) [[unlikely]]
    detail::dbg::on_run(l);
  struct Reset {
    LoopImpl& l;
    ~Reset() {
      l.stopping = false;
      l.running = false;
      l.record.running = nullptr;  // the thread's variable may go with the thread
      detail::set_running(nullptr);
    }
  } reset{l};
  // As asyncio's run_forever: the stop flag is checked after each iteration, so a stop() made
  // before the loop started still lets one iteration run.
  do {
    l.run_once();
  } while (!l.stopping);
}

void EventLoop::stop() noexcept {
  impl_->stopping = true;
}

void EventLoop::close() {
  LoopImpl& l = *impl_;
  if (l.running) throw RuntimeError("Cannot close a running event loop");
  if (l.closed) return;
  l.closed = true;
  l.drop_fd_callbacks();
  l.detach_net();
  l.close_services();
  l.release_backend();
  l.close_default_executor();
}

bool EventLoop::is_running() const noexcept {
  return impl_->running;
}
bool EventLoop::is_closed() const noexcept {
  return impl_->closed;
}
const char* EventLoop::backend_name() const noexcept {
  return impl_->backend_ ? impl_->backend_->name() : "closed";
}

namespace {
Handle soon(LoopImpl& l, detail::SmallFunction& fn, const Context* context) {
  if (l.closed) throw RuntimeError("Event loop is closed");
  l.check_thread("call_soon");
  HandleNode* n = l.handles.acquire();
  n->fn = std::move(fn);
  n->context = context != nullptr ? context->share() : detail::ctx_capture();
  l.schedule(n);
  return Handle(n, n->generation);
}

TimerHandle at(LoopImpl& l, Clock::time_point when, detail::SmallFunction& fn,
               const Context* context) {
  if (l.closed) throw RuntimeError("Event loop is closed");
  l.check_thread("call_at");
  HandleNode* n = l.handles.acquire();
  n->fn = std::move(fn);
  n->context = context != nullptr ? context->share() : detail::ctx_capture();
  l.add_timer(n, when);
  return TimerHandle(n, n->generation, when);
}

/// A thread-safe post runs in the poster's context: the word travels with the callable (the
/// entry queue carries callables only), and only when there is one.
void post(LoopImpl& l, detail::SmallFunction& fn, detail::CtxWord context) {
  if (context != 0) {
    fn = [hold = detail::CtxHold(context), f = std::move(fn)]() mutable {
      detail::ContextScope scope(&hold.word);
      f();
    };
  }
  if (!l.entry->post(fn)) throw RuntimeError("Event loop is closed");
}
}  // namespace

Handle EventLoop::call_soon(detail::SmallFunction fn) {
  return soon(*impl_, fn, nullptr);
}
Handle EventLoop::call_soon(detail::SmallFunction fn, const Context& context) {
  return soon(*impl_, fn, &context);
}

TimerHandle EventLoop::call_later(Clock::duration delay, detail::SmallFunction fn) {
  return at(*impl_, Clock::now() + delay, fn, nullptr);
}
TimerHandle EventLoop::call_later(Clock::duration delay, detail::SmallFunction fn,
                                  const Context& context) {
  return at(*impl_, Clock::now() + delay, fn, &context);
}

TimerHandle EventLoop::call_at(Clock::time_point when, detail::SmallFunction fn) {
  return at(*impl_, when, fn, nullptr);
}
TimerHandle EventLoop::call_at(Clock::time_point when, detail::SmallFunction fn,
                               const Context& context) {
  return at(*impl_, when, fn, &context);
}

void EventLoop::call_soon_threadsafe(detail::SmallFunction fn) {
  post(*impl_, fn, detail::ctx_capture());
}
void EventLoop::call_soon_threadsafe(detail::SmallFunction fn, const Context& context) {
  post(*impl_, fn, context.share());
}

void EventLoop::set_exception_handler(ExceptionHandler handler) {
  impl_->exception_handler = std::move(handler);
}
ExceptionHandler EventLoop::get_exception_handler() const {
  return impl_->exception_handler;
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
  if (impl_->exception_handler) {
    try {
      impl_->exception_handler(*this, context);
      return;
    } catch (...) {
      // A failing handler falls back to the default one, as asyncio does.
    }
  }
  default_exception_handler(context);
}

void EventLoop::default_exception_handler(const ExceptionContext& context) noexcept {
  std::string detail;
  if (context.exception) {
    try {
      std::rethrow_exception(context.exception);
    } catch (const std::exception& e) {
      detail = e.what();
    } catch (const CancelledError& e) {
      detail = std::string("CancelledError: ") + e.what();
    } catch (...) {
      detail = "unknown exception";
    }
  }
  std::string task;
  if (context.task) task = " task=" + context.task->get_name();
  // The task and the exception go on the message's first line; its further lines (an await
  // chain, where the task was created) follow.
  const std::string_view message = context.message;
  const std::size_t eol = std::min(message.find('\n'), message.size());
  const std::string_view first = message.substr(0, eol);
  const std::string_view rest = message.substr(eol);
  std::fprintf(stderr, "weave: %.*s%s%s%s%.*s\n", static_cast<int>(first.size()), first.data(),
               task.c_str(), detail.empty() ? "" : ": ", detail.c_str(),
               static_cast<int>(rest.size()), rest.data());
}

void EventLoop::set_debug(bool enabled) noexcept {
  impl_->debug = enabled;
  impl_->hooks = static_cast<std::uint8_t>(enabled ? impl_->hooks | detail::dbg::kDebug
                                                   : impl_->hooks & ~detail::dbg::kDebug);
}
bool EventLoop::get_debug() const noexcept {
  return impl_->debug;
}

void EventLoop::run_until_done(detail::FutureCore* f) {
  // The stop callback is a pooled handle: if the loop stops for another reason first, it is
  // unlinked, or cancelled when already queued, so that nothing dangles into the next run.
  if (f->loop() != this) {
    throw ValueError(
        "The future belongs to a different loop than the one specified as the loop "
        "argument");
  }
  LoopImpl& l = *impl_;
  HandleNode* n = l.handles.acquire();
  const std::uint32_t generation = n->generation;
  n->fn = [this] { stop(); };
  if (f->done()) {
    l.handles.recycle(n);
    return;
  }
  f->done_waiters.push_back(n);
  struct Withdraw {
    LoopImpl& l;
    detail::FutureCore* f;
    HandleNode* n;
    std::uint32_t generation;
    ~Withdraw() {
      if (n->generation != generation) return;  // ran and went back to the pool
      if (n->linked()) {
        f->done_waiters.remove(n);
        l.handles.recycle(n);
      } else {
        n->flags |= HandleNode::kCancelled;
      }
    }
  } withdraw{l, f, n, generation};
  run_forever();
  if (!f->done()) throw RuntimeError("Event loop stopped before Future completed.");
}

void Handle::cancel() noexcept {
  cancelled_ = true;
  if (node_ == nullptr || node_->generation != generation_) return;
  if ((node_->flags & HandleNode::kCancelled) != 0) return;
  node_->flags |= HandleNode::kCancelled;
  // Release what the callback holds, as asyncio does; unless the callback is the one cancelling
  // its own handle: it is still running, and the node's recycling releases it.
  if ((node_->flags & HandleNode::kRunning) == 0) node_->fn.reset();
  if (node_->queued()) {
    // A timer still in the heap is removed at once; the node goes back to the pool.
    node_->owner->remove_timer(node_);
    node_->owner->handles.recycle(node_);
  }
}

bool Handle::cancelled() const noexcept {
  if (cancelled_) return true;
  return node_ != nullptr && node_->generation == generation_ &&
         (node_->flags & HandleNode::kCancelled) != 0;
}

EventLoop& get_running_loop() {
  EventLoop* loop = detail::running_loop_or_null();
  if (loop == nullptr) throw RuntimeError("no running event loop");
  return *loop;
}

}  // namespace weave

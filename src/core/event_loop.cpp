// EventLoop and its iteration. run_once() is the only place callbacks and task steps run, and it
// reads like asyncio's _run_once, one phase per step:
//   1. poll I/O: block until the earliest timer, or not at all when something is ready;
//   2. move calls from other threads (call_soon_threadsafe) to the ready queue;
//   3. move due timers to the ready queue, in (deadline, sequence) order;
//   4. run exactly the nodes that were ready when this phase began; whatever they schedule runs
//      in the next iteration.

#include <atomic>
#include <cstdio>
#include <exception>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

namespace {
thread_local EventLoop* t_running = nullptr;
}

LoopImpl* running_impl() noexcept {
  return t_running != nullptr ? &t_running->impl() : nullptr;
}
void set_running(EventLoop* loop) noexcept {
  t_running = loop;
}
EventLoop* running_loop_or_null() noexcept {
  return t_running;
}

namespace {
std::atomic<std::uint64_t> loop_serials{0};
}

LoopImpl::LoopImpl(EventLoop& o)
    : owner(o),
      handles(this),
      serial(++loop_serials),
      backend_(io::make_backend()),
      entry(std::make_shared<EntryQueue>(backend_.get())) {}

LoopImpl::~LoopImpl() {
  drop_fd_callbacks();
  detach_net();
  if (!closed) close_services();
  for (FdCallback* cb : orphaned_) delete cb;
  // Threads that still hold a LoopLink find the entry closed from now on. The default executor's
  // threads are joined after that (an owned pool joins in its destructor): what they complete
  // late is dropped, not delivered to a loop being destroyed.
  entry->close();
  join_shutdown_thread();
  default_executor.reset();
  timers_.clear();
  // Tasks still pending (a loop closed without run()'s clean-up): frames nobody holds are freed;
  // held ones are detached and freed with their last handle.
  while (tasks_ != nullptr) {
    TaskCore* t = tasks_;
    unregister_task(t);
    t->link_ = nullptr;
    if (t->refs == 0) task_root(t).destroy();
  }
}

void LoopImpl::register_task(TaskCore* t) noexcept {
  t->reg_prev = nullptr;
  t->reg_next = tasks_;
  if (tasks_ != nullptr) tasks_->reg_prev = t;
  tasks_ = t;
}

void LoopImpl::unregister_task(TaskCore* t) noexcept {
  if (t->reg_prev != nullptr) {
    t->reg_prev->reg_next = t->reg_next;
  } else if (tasks_ == t) {
    tasks_ = t->reg_next;
  }
  if (t->reg_next != nullptr) t->reg_next->reg_prev = t->reg_prev;
  t->reg_prev = t->reg_next = nullptr;
}

void LoopImpl::check_thread(const char* what) const {
  if (debug && running && std::this_thread::get_id() != thread) {
    throw RuntimeError(std::string("Non-thread-safe operation invoked on an event loop other than "
                                   "the current one: ") +
                       what);
  }
}

void LoopImpl::release_backend() noexcept {
  entry->close();
  backend_.reset();
}

void LoopImpl::run_once() {
  // Phase 1: I/O.
  std::optional<std::chrono::nanoseconds> timeout;
  if (!ready_.empty() || stopping || entry->pending()) {
    timeout = std::chrono::nanoseconds(0);
  } else if (!timers_.empty()) {
    timeout = std::max(timers_.top()->when - Clock::now(), Clock::duration(0));
  }
  backend_->poll(timeout);
  // Phase 2: calls from other threads.
  if (entry->pending()) drain_threadsafe();
  // Phase 3: timers.
  if (!timers_.empty()) fire_timers();
  // Phase 4: run the batch.
  run_ready();
}

void LoopImpl::drain_threadsafe() {
  entry->take(entry_batch_);
  for (SmallFunction& fn : entry_batch_) {
    HandleNode* n = handles.acquire();
    n->fn = std::move(fn);
    schedule(n);
  }
  entry_batch_.clear();
}

void LoopImpl::fire_timers() {
  const Clock::time_point now = Clock::now();
  while (!timers_.empty() && timers_.top()->when <= now) schedule(timers_.pop());
}

void LoopImpl::run_ready() {
  Node* n = ready_.take_all();
  while (n != nullptr) {
    Node* next = n->next_ready;  // running n may queue it again
    run_node(n);
    n = next;
  }
}

void LoopImpl::run_node(Node* n) {
  const bool timed = debug;
  const Clock::time_point start = timed ? Clock::now() : Clock::time_point{};
  if (n->kind == NodeKind::Task) {
    task_step(static_cast<TaskCore*>(n));
  } else {
    auto* cb = static_cast<CallbackNode*>(n);
    try {
      cb->fn(cb);
    } catch (const CancelledError&) {
      // A cancellation that escapes a plain callback has nobody to go to.
    } catch (...) {
      owner.call_exception_handler({"Exception in callback", std::current_exception(), {}});
    }
  }
  if (timed) {
    auto took = Clock::now() - start;
    if (took >= owner.slow_callback_duration) {
      std::fprintf(stderr, "weave: executing %s took %.3f seconds\n",
                   n->kind == NodeKind::Task ? "a task step" : "a callback",
                   std::chrono::duration<double>(took).count());
    }
  }
}

void run_handle(CallbackNode* node) {
  auto* n = static_cast<HandleNode*>(node);
  LoopImpl* loop = n->owner;
  struct Recycle {
    LoopImpl* loop;
    HandleNode* n;
    ~Recycle() { loop->handles.recycle(n); }
  } recycle{loop, n};
  if ((n->flags & HandleNode::kCancelled) == 0) n->fn();
}

}  // namespace weave::detail

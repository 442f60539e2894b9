// Tasks: starting, stepping, waiting, waking, cancelling, finishing. The rules are asyncio's
// Task.__step/cancel/uncancel:
// - cancel() on a waiting task withdraws its wait first (a timer, a list membership, or the
//   awaited future, which is cancelled in turn); the task then resumes with CancelledError at
//   that await. When nothing can be withdrawn (the task is already queued to run, or running), a
//   pending cancel is remembered (kMustCancel) and raised at its next resume.
// - A task's frame lives until the task is done and no handle refers to it.

#include <atomic>
#include <cstdlib>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::detail {

void destroy_task_frame(TaskCore* t) noexcept;

constinit thread_local TaskCore* t_current WEAVE_HOT_TLS = nullptr;

namespace {
std::atomic<std::uint32_t> g_task_counter{0};

void clear_wait(TaskCore* t) noexcept {
  t->wait_kind = static_cast<std::uint8_t>(WaitKind::None);
  t->waiting_on = nullptr;
}

/// Ends the wait as cancelled: the next resume raises CancelledError.
void withdrawn(TaskCore* t) noexcept {
  clear_wait(t);
  t->flags |= fflag::kMustCancel;
  schedule(t->loop(), t);
}

/// asyncio's fut_waiter.cancel(msg): true when the wait is ending in CancelledError.
bool withdraw_wait(TaskCore* t, std::string_view msg) {
  switch (static_cast<WaitKind>(t->wait_kind)) {
    case WaitKind::List:
      static_cast<WaiterList*>(t->waiting_on)->remove(t);
      withdrawn(t);
      return true;
    case WaitKind::Timer:
      t->loop()->impl().remove_timer(t);
      withdrawn(t);
      return true;
    case WaitKind::TimerFired:  // its wake-up is already queued
      return false;
    case WaitKind::Future:
      return cancel_any(static_cast<FutureCore*>(t->waiting_on), msg);
    case WaitKind::Custom:
      return static_cast<Withdrawable*>(t->waiting_on)->withdraw(msg);
    case WaitKind::None:
      break;
  }
  return false;
}

std::string_view cancel_message(const TaskCore* t) {
  return (t->flags & fflag::kCancelMsg) != 0 ? std::string_view(t->find_extras()->cancel_message)
                                             : std::string_view();
}
}  // namespace

TaskCore* const* current_task_slot() noexcept {
  return &t_current;
}
void set_current_task(TaskCore* t) noexcept {
  t_current = t;
}

TaskCore* require_task(const char* what) {
  if (t_current == nullptr) throw RuntimeError(std::string("cannot ") + what + " outside a task");
  return t_current;
}

namespace {
// asyncio keeps a task's _source_traceback in debug mode only; out of line, so that the check
// is all the common task pays.
[[gnu::noinline, gnu::cold]] void remember_creation(TaskCore* core, CallSite created_at) {
  core->extras().created_at = created_at;
}

void init_task(EventLoop* loop, LoopImpl& l, TaskCore* core, std::string* name,
               CallSite created_at) {
  std::coroutine_handle<> root = task_root(core);
  if (l.closed) {
    root.destroy();
    throw RuntimeError("Event loop is closed");
  }
  // First, so that `created_at` is dead before the calls below (no register kept for it).
  if (l.debug) [[unlikely]]
    remember_creation(core, created_at);
  core->flags |= fflag::kIsTask;
  core->link_ = loop;
  core->leaf = root;
  core->id = g_task_counter.fetch_add(1, std::memory_order_relaxed) + 1;
  if (name != nullptr && !name->empty()) core->extras().name = std::move(*name);
}
}  // namespace

namespace {
/// Whether the caller runs the task's first step now (eager_step); else it is scheduled.
bool run_eagerly_or_schedule(LoopImpl& l, TaskCore* core, bool eager) {
  // asyncio: a task created while its loop is not running starts as a lazy one.
  if (eager && l.running && running_impl() == &l) {
    ++core->refs;  // released by eager_step: the step may finish the task
    return true;
  }
  l.schedule(core);
  return false;
}
}  // namespace

bool start_task(EventLoop* loop, TaskCore* core, std::string* name, CallSite created_at) {
  LoopImpl& l = loop->impl();
  if (l.plain_eager_factory) {
    init_task(loop, l, core, name, created_at);
    core->context = ctx_capture();
    l.register_task(core);
    return run_eagerly_or_schedule(l, core, true);
  }
  if (l.task_factory) {
    TaskOptions options;
    if (name != nullptr) options.name = std::move(*name);
    return start_task(loop, core, options, created_at);
  }
  init_task(loop, l, core, name, created_at);
  core->context = ctx_capture();  // a copy of the creator's context: one word
  l.register_task(core);
  l.schedule(core);
  return false;
}

bool start_task(EventLoop* loop, TaskCore* core, TaskOptions& options, CallSite created_at) {
  LoopImpl& l = loop->impl();
  if (l.task_factory) {
    TaskFactory factory = l.task_factory;  // it may reset itself
    try {
      factory(*loop, options);
    } catch (...) {
      task_root(core).destroy();
      throw;
    }
  }
  init_task(loop, l, core, &options.name, created_at);
  core->context = options.context ? options.context->share() : ctx_capture();
  l.register_task(core);
  return run_eagerly_or_schedule(l, core, options.eager_start);
}

void eager_step(TaskCore* core) noexcept {
  // asyncio's __eager_start: the task is current during its first step, then the creator again;
  // it runs in its own context, not in a scope (a callback's, Context::run's) around create_task.
  TaskCore* outer = t_current;
  CtxWord* scope = ctx_swap_scope(nullptr);
  t_current = core;
  core->leaf.resume();  // may finish the task; the reference taken in start_task keeps it
  t_current = outer;
  ctx_swap_scope(scope);
  task_release(core);
}

void destroy_frames(TaskCore* t) noexcept {
  // An awaiter torn down while suspended finds its task as the current one (sync_wait.hpp).
  TaskCore* outer = t_current;
  t_current = t;
  const CtxWord context = t->context;  // the frame's destructors still see the task's context
  task_root(t).destroy();
  t_current = outer;
  ctx_release(context);
}

void task_step(TaskCore* t) noexcept {
  TaskCore* outer = t_current;
  t_current = t;
  t->leaf.resume();  // may finish the task and free it: t is not touched after this
  t_current = outer;
}

namespace {
/// A cancel that arrived while the task ran is applied to the wait it just began (asyncio's
/// __step: `if self._must_cancel: if self._fut_waiter.cancel(): self._must_cancel = False`).
void apply_pending_cancel(TaskCore* task) {
  if ((task->flags & fflag::kMustCancel) != 0) {
    task->flags &= ~fflag::kMustCancel;
    if (!withdraw_wait(task, cancel_message(task))) task->flags |= fflag::kMustCancel;
  }
}
}  // namespace

void begin_wait(TaskCore* task, std::coroutine_handle<> leaf, WaitKind kind, void* target,
                const CallSite* site) {
  task->leaf = leaf;
  task->wait_kind = static_cast<std::uint8_t>(kind);
  task->waiting_on = target;
  if (kind != WaitKind::None) {
    task->wait_site = site;  // a yield leaves both stale: readers ignore them under None
    task->wait_since = task->loop()->impl().clock_ms;
    apply_pending_cancel(task);
  }
}

void begin_sleep(TaskCore* task, std::coroutine_handle<> leaf, Clock::time_point when,
                 const CallSite* site) {
  task->leaf = leaf;
  task->wait_site = site;
  task->wait_kind = static_cast<std::uint8_t>(WaitKind::Timer);
  task->wait_since = task->loop()->impl().clock_ms;
  task->loop()->impl().add_timer(task, when);  // sets the slot in waiting_on
  apply_pending_cancel(task);
}

void wake(TaskCore* task) noexcept {
  clear_wait(task);
  if (task->loop()->impl().hooks) [[unlikely]]
    dbg::on_wake(task->loop()->impl(), task);
  schedule(task->loop(), task);
}

void throw_cancelled(TaskCore* task) {
  task->flags &= ~fflag::kMustCancel;
  throw CancelledError(std::string(cancel_message(task)));
}

bool task_cancel(TaskCore* t, std::string_view msg) {
  t->flags |= fflag::kRetrieved;
  if (t->done()) return false;
  // Detached from a destroyed loop: the task can never run again, and what it waits on (a
  // future of that loop) must not be touched.
  if (t->loop() == nullptr) return false;
  ++t->extras().cancel_requests;  // in the side table: most tasks are never cancelled
  if (!msg.empty() || (t->flags & fflag::kCancelMsg) != 0) {
    t->extras().cancel_message = std::string(msg);
    t->flags |= fflag::kCancelMsg;
  }
  if (withdraw_wait(t, msg)) return true;
  t->flags |= fflag::kMustCancel;
  return true;
}

void task_finish(TaskCore* t) noexcept {
  FutureState state = FutureState::Finished;
  if (!t->exception && (t->flags & fflag::kMustCancel) != 0) {
    // asyncio's __step: a task cancelled while it runs that then returns without awaiting again
    // ends cancelled, not with its value ("Task is cancelled right before coro stops").
    t->flags &= ~fflag::kMustCancel;
    t->exception = make_cancelled(t);
  }
  if (t->exception) {
    try {
      std::rethrow_exception(t->exception);
    } catch (const CancelledError&) {
      state = FutureState::Cancelled;
    } catch (...) {
    }
  }
  if (EventLoop* loop = t->loop()) loop->impl().unregister_task(t);
  future_complete(t, state);
  if (t->refs == 0) destroy_task_frame(t);
}

void task_release(TaskCore* t) noexcept {
  if (--t->refs != 0) return;
  // A detached task (its loop is gone) can never finish: free it with its last handle.
  if (t->done() || t->loop() == nullptr) destroy_task_frame(t);
}

void check_not_self(TaskCore* awaited, TaskCore* awaiting) {
  if (awaited == awaiting) throw RuntimeError("Task cannot await on itself");
}

}  // namespace weave::detail

namespace weave {

int TaskRef::uncancel() noexcept {
  if (core_->find_extras() == nullptr) return 0;
  std::uint32_t& requests = core_->extras().cancel_requests;
  if (requests > 0 && --requests == 0) core_->flags &= ~detail::fflag::kMustCancel;
  return static_cast<int>(requests);
}

int TaskRef::cancelling() const noexcept {
  const detail::FutureExtras* extras = core_->find_extras();
  return extras != nullptr ? static_cast<int>(extras->cancel_requests) : 0;
}

std::string TaskRef::get_name() const {
  const detail::FutureExtras* extras = core_->find_extras();
  if (extras != nullptr && !extras->name.empty()) return extras->name;
  return "Task-" + std::to_string(core_->id);
}

void TaskRef::set_name(std::string name) {
  core_->extras().name = std::move(name);
}

std::exception_ptr TaskRef::exception() const {
  detail::require_done(core_);
  if (core_->cancelled()) detail::rethrow(core_);
  core_->flags |= detail::fflag::kRetrieved;
  return core_->exception;
}

void TaskRef::result() const {
  detail::require_done(core_);
  if (core_->exception) detail::rethrow(core_);
}

CallbackId TaskRef::add_done_callback(std::function<void(TaskRef)> fn) {
  auto* node = new detail::UserCallback<TaskRef>(core_, std::move(fn));
  detail::add_done_waiter(core_, node);
  return reinterpret_cast<CallbackId>(node);
}

std::size_t TaskRef::remove_done_callback(CallbackId id) {
  return detail::remove_done_waiter(core_, id);
}

void eager_task_factory(EventLoop&, TaskOptions& options) {
  options.eager_start = true;
}

TaskFactory create_eager_task_factory(TaskFactory custom) {
  return [custom = std::move(custom)](EventLoop& loop, TaskOptions& options) {
    if (custom) custom(loop, options);
    options.eager_start = true;
  };
}

void EventLoop::set_task_factory(TaskFactory factory) {
  using Plain = void (*)(EventLoop&, TaskOptions&);
  const Plain* target = factory.target<Plain>();
  impl_->plain_eager_factory = target != nullptr && *target == &eager_task_factory;
  impl_->task_factory = std::move(factory);
}

const TaskFactory& EventLoop::get_task_factory() const noexcept {
  return impl_->task_factory;
}

std::optional<TaskRef> current_task() {
  (void)get_running_loop();  // asyncio: RuntimeError outside a running loop
  if (detail::t_current == nullptr) return std::nullopt;
  return TaskRef(detail::t_current);
}

std::vector<TaskRef> all_tasks() {
  std::vector<TaskRef> tasks;
  get_running_loop().impl().for_each_task([&](detail::TaskCore* t) { tasks.emplace_back(t); });
  return tasks;
}

namespace {
/// The task is its own timer (see timer_queue.hpp), so the awaiter holds no node; nor the task,
/// which is the current one on resume: the awaiter lives in the frame of every sleeping task.
struct SleepAwaiter {
  Clock::duration delay;
  const detail::CallSite* site;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    detail::TaskCore* task = detail::t_current;
    if (task == nullptr) task = detail::require_task("sleep");  // throws
    if (delay <= Clock::duration::zero()) {  // a bare yield, as asyncio's sleep(0)
      detail::begin_wait(task, h, detail::WaitKind::None, nullptr, site);
      task->loop()->impl().schedule(task);
      return;
    }
    detail::begin_sleep(task, h, Clock::now() + delay, site);
  }
  void await_resume() const { detail::checkpoint(detail::t_current); }
};

// The site is a parameter, so it lives in this frame for the whole sleep.
Coro<void> sleep_frame(Clock::duration delay, detail::CallSite site) {
  co_await SleepAwaiter{delay, &site};
}
}  // namespace

namespace detail {
Coro<void> sleep_for(Clock::duration delay, CallSite site) {
  return sleep_frame(delay, site);
}
}  // namespace detail

namespace detail {
void yield_now(std::coroutine_handle<> leaf) {
  TaskCore* task = t_current;
  if (task == nullptr) task = require_task("sleep");  // throws
  begin_wait(task, leaf, WaitKind::None, nullptr);
  task->loop()->impl().schedule(task);
}

Coro<void> yield_frame() {
  return sleep_frame(Clock::duration::zero(), CallSite::none());
}
}  // namespace detail

}  // namespace weave

namespace weave::detail {
void wake_cancelled(TaskCore* task) noexcept {
  withdrawn(task);
}
}  // namespace weave::detail

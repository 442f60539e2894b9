// EventLoop and its iteration. run_once() is the only place callbacks and task steps run, and it
// reads like asyncio's _run_once, one phase per step:
//   1. poll I/O: block until the earliest timer, or not at all when something is ready;
//      a non-blocking poll is skipped while fewer than kPollBudget nodes ran since the last one
//      (see below);
//   2. move calls from other threads (call_soon_threadsafe) to the ready queue;
//   3. move due timers to the ready queue, in (deadline, sequence) order; the precise clock is
//      only read when the coarse one says a timer may be due (see timer_may_be_due);
//   4. run exactly the nodes that were ready when this phase began; whatever they schedule runs
//      in the next iteration.

#include <time.h>

#include <atomic>
#include <cstdio>
#include <exception>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

namespace {
constinit thread_local EventLoop* t_running WEAVE_HOT_TLS = nullptr;
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
      entry(std::make_shared<EntryQueue>(backend_.get())),
      coarse_slack_(coarse_clock_slack()) {
  note_clock(coarse_now());
  debug = dbg::env_debug();
  if (debug) hooks |= dbg::kDebug;
  if (dbg::env_stats()) hooks |= dbg::kStats;
  dbg::env_trace();
  record.tasks = &tasks_;
  record.timers = timers_.heap_address();
  record.serial = serial;
  record.tid = dbg::this_thread_tid();
  dbg::link_loop(&record);
}

LoopImpl::~LoopImpl() {
  dbg::unlink_loop(&record);  // before anything it leads to is freed
  drop_fd_callbacks();
  detach_net();
  detach_asyncgens();
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
    if (t->refs == 0) destroy_frames(t);
  }
}

void LoopImpl::register_task(TaskCore* t) noexcept {
  // No generation bump: an outside reader walks forward from the head it read, which a push at
  // the head leaves intact; it only has to see the new task linked before it is the head.
  t->reg_prev = nullptr;
  t->reg_next = tasks_;
  if (tasks_ != nullptr) tasks_->reg_prev = t;
  dbg::publish_fence();
  tasks_ = t;
  if (hooks) [[unlikely]]
    dbg::on_task_created(*this, t);
}

void LoopImpl::unregister_task(TaskCore* t) noexcept {
  if (hooks) [[unlikely]]
    dbg::on_task_done(*this, t);
  const std::uint64_t g = record.generation.begin();  // a reader may be walking through t
  if (t->reg_prev != nullptr) {
    t->reg_prev->reg_next = t->reg_next;
  } else if (tasks_ == t) {
    tasks_ = t->reg_next;
  }
  if (t->reg_next != nullptr) t->reg_next->reg_prev = t->reg_prev;
  t->reg_prev = t->reg_next = nullptr;
  record.generation.end(g);
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
  // Phase 1: I/O. When something is ready the poll does not block, and it is only a check for
  // I/O that completed meanwhile; asyncio makes it every iteration, which costs one system call
  // per iteration and dominates a loop whose iterations are short (a task yielding with
  // sleep(0s)). It is made once kPollBudget nodes have run since the last poll instead (as
  // Tokio's event_interval), so I/O is seen at most that many callbacks late and no ordering
  // among callbacks and timers changes. A poll that may block is always made.
  std::optional<std::chrono::nanoseconds> timeout;
  if (!ready_.empty() || stopping || entry->pending()) {
    timeout = std::chrono::nanoseconds(0);
  } else if (!timers_.empty()) {
    timeout = std::max(timers_.top().when - Clock::now(), Clock::duration(0));
  }
  if (!timeout || timeout->count() != 0 || ran_since_poll_ >= kPollBudget) {
    ran_since_poll_ = 0;
    if (!timeout && hooks) [[unlikely]]
      dbg::on_block_forever(*this);
    backend_->poll(timeout);
    note_clock(coarse_now());
    sync_trace_bit();
  }
  // Phase 2: calls from other threads.
  if (entry->pending()) drain_threadsafe();
  // Phase 3: timers.
  if (!timers_.empty() && timer_may_be_due()) fire_timers();
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

// Reading the precise clock costs tens of nanoseconds (far more in some VMs), and a loop with any
// timer pending (a timeout of a few seconds somewhere) would pay it every iteration, more than the
// iteration itself when it runs one callback. The coarse clock (CLOCK_MONOTONIC_COARSE, the same
// clock read at the last tick) costs a fraction: it never runs ahead of the precise clock and
// lags it by at most a tick, so while the earliest deadline is more than two ticks past it no
// timer can be due. Should it lag more (a tickless CPU, a paused VM), the precise clock is read
// anyway once kPollBudget nodes have run, which bounds how late a timer can be seen.
bool LoopImpl::timer_may_be_due() noexcept {
  if (ran_since_clock_ >= kPollBudget) return true;
  const Clock::time_point coarse = coarse_now();
  note_clock(coarse);
  return coarse + coarse_slack_ >= timers_.top().when;
}

Clock::time_point LoopImpl::coarse_now() noexcept {
  timespec ts{};
  (void)clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // cannot fail for a clock the kernel has
  return Clock::time_point{std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)};
}

Clock::duration LoopImpl::coarse_clock_slack() noexcept {
  timespec res{};
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0) return Clock::duration::max() / 2;
  return 2 * (std::chrono::seconds(res.tv_sec) + std::chrono::nanoseconds(res.tv_nsec));
}

void LoopImpl::fire_timers() {
  ran_since_clock_ = 0;
  const Clock::time_point now = Clock::now();
  note_clock(now);
  if (hooks && !timers_.empty() && timers_.top().when <= now) [[unlikely]]
    last_fire_lag_ = now - timers_.top().when;
  while (!timers_.empty() && timers_.top().when <= now) {
    Node* n = timers_.pop();
    if (n->kind == NodeKind::Task) {
      n->wait_kind = static_cast<std::uint8_t>(WaitKind::TimerFired);
    }
    schedule(n);
  }
}

inline void LoopImpl::dispatch(Node* n) {
  if (n->kind == NodeKind::Task) {
    auto* t = static_cast<TaskCore*>(n);
    if (static_cast<WaitKind>(t->wait_kind) == WaitKind::TimerFired) {
      wake(t);  // the sleep's timer callback: the step itself runs next iteration
    } else {
      task_step(t);
    }
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
}

// The loop's innermost path: each node is dispatched here, inline, and the budgets counted once
// per batch (only run_once reads them, between batches).
void LoopImpl::run_ready() {
  Node* n = ready_.take_all();
  if (hooks) [[unlikely]]
    iteration_hook(n);
  std::uint32_t ran = 0;
  while (n != nullptr) {
    Node* next = n->next_ready;  // running n may queue it again
    // A big batch is scattered over memory (a million woken tasks): fetch the next node while
    // this one runs, instead of stalling on it afterwards.
    if (next != nullptr) __builtin_prefetch(next);
    if (hooks) [[unlikely]] {
      run_node_timed(n);
    } else {
      dispatch(n);
    }
    ++ran;
    n = next;
  }
  ran_since_poll_ += ran;
  ran_since_clock_ += ran;
}

/// Statistics and trace counters: the batch's size and how late its earliest timer ran.
void LoopImpl::iteration_hook(Node* batch) {
  std::size_t depth = 0;
  for (Node* m = batch; m != nullptr; m = m->next_ready) ++depth;
  const Clock::duration lag = std::exchange(last_fire_lag_, Clock::duration(0));
  dbg::on_iteration(*this, depth, lag, ran_since_poll_ == 0);
}

/// Debug mode, statistics, tracing: a node's dispatch between src/debug's hooks (slow-step report,
/// watchdog, per-task figures, trace slices).
void LoopImpl::run_node_timed(Node* n) {
  dbg::StepToken tok;
  dbg::before_node(*this, n, tok);
  dispatch(n);
  dbg::after_node(*this, tok);
}

void run_handle(CallbackNode* node) {
  auto* n = static_cast<HandleNode*>(node);
  LoopImpl* loop = n->owner;
  struct Recycle {
    LoopImpl* loop;
    HandleNode* n;
    ~Recycle() { loop->handles.recycle(n); }
  } recycle{loop, n};
  if ((n->flags & HandleNode::kCancelled) == 0) {
    n->flags |= HandleNode::kRunning;  // a cancel() from inside must not destroy the callable
    ContextScope scope(&n->context);
    n->fn();
  }
}

}  // namespace weave::detail

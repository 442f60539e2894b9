#pragma once
// The loop's private state. EventLoop (include/weave/loop.hpp) is a thin shell over this, so that
// no internal type reaches the public headers.

#include <cstdint>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/entry_queue.hpp"
#include "core/handle_pool.hpp"
#include "core/ready_queue.hpp"
#include "core/timer_queue.hpp"
#include "debug/debug_mode.hpp"
#include "debug/debug_offsets.hpp"
#include "io/backend.hpp"
#include "weave/loop.hpp"

namespace weave::concurrent {
class Executor;
}

namespace weave::detail {

class LoopImpl;
class SocketTransport;
class DatagramSocketTransport;
struct ServerState;
struct AsyncGenLink;

/// A part of src/proc that holds loop resources (signal handlers, child-process watches). The
/// loop creates none itself; each is made on first use and closed with the loop.
struct LoopService {
  virtual ~LoopService() = default;
  /// The loop is closing: let go of every fd and watch while the backend is still there.
  virtual void close() noexcept = 0;
};

/// add_reader/add_writer's callback on one (fd, direction); see fd_callbacks.cpp.
struct FdCallback final : CallbackNode, io::ReadyListener {
  FdCallback(LoopImpl* l, int f, io::Interest i, std::function<void()> callback)
      : CallbackNode(&run),
        loop(l),
        fd(f),
        interest(i),
        fn(std::move(callback)),
        context(ctx_capture()) {}
  ~FdCallback() { ctx_release(context); }
  FdCallback(const FdCallback&) = delete;
  FdCallback& operator=(const FdCallback&) = delete;
  void on_ready() noexcept override;
  static void run(CallbackNode* node);

  LoopImpl* loop;
  int fd;
  io::Interest interest;
  std::function<void()> fn;
  /// A copy of the context add_reader/add_writer was called in: each run happens in it, as
  /// asyncio's reader Handle runs in the context it captured.
  CtxWord context;
  bool queued = false;   ///< in the ready queue
  bool removed = false;  ///< removed while queued: its run frees it
};

class LoopImpl {
 public:
  explicit LoopImpl(EventLoop& owner);
  ~LoopImpl();

  /// One iteration; the only place callbacks and task steps run. See event_loop.cpp.
  void run_once();

  void schedule(Node* n) noexcept { ready_.push(n); }
  void add_timer(TimerNode* n, Clock::time_point when) { timers_.push(n, when); }
  void add_timer(TaskCore* t, Clock::time_point when) { timers_.push(t, when); }
  void remove_timer(TimerNode* n) noexcept { timers_.remove(n); }
  void remove_timer(TaskCore* t) noexcept { timers_.remove(t); }

  void register_task(TaskCore* t) noexcept;
  void unregister_task(TaskCore* t) noexcept;
  std::size_t timer_count() const noexcept { return timers_.size(); }
  std::size_t fd_callback_count() const noexcept {
    return fd_callbacks_[0].size() + fd_callbacks_[1].size();
  }
  template <class Fn>
  void for_each_task(Fn&& fn) const {
    for (TaskCore* t = tasks_; t != nullptr; t = t->reg_next) fn(t);
  }

  /// Debug mode only: RuntimeError when called off the loop's thread.
  void check_thread(const char* what) const;
  /// Refuses thread-safe posts, drops the ones not run, and releases the backend.
  void release_backend() noexcept;
  /// Joins the thread of an awaited shutdown_default_executor(), if one was started.
  void join_shutdown_thread() noexcept;
  /// close(): shuts the default executor down without waiting (asyncio's loop.close()).
  void close_default_executor() noexcept;

  void add_fd_callback(int fd, io::Interest interest, std::function<void()> fn);
  bool remove_fd_callback(int fd, io::Interest interest) noexcept;
  /// close(): every fd callback goes, and its watch with it.
  void drop_fd_callbacks() noexcept;
  /// close(): transports and servers let go of the loop (src/net); their handles may outlive it.
  void detach_net() noexcept;
  /// The loop goes: the generators it lists no longer refer to it (asyncgens.cpp).
  void detach_asyncgens() noexcept;

  std::unordered_set<SocketTransport*> transports;  ///< open, started transports
  std::unordered_set<DatagramSocketTransport*> datagrams;
  std::unordered_set<ServerState*> servers;
  AsyncGenLink* asyncgens = nullptr;  ///< started, unfinished generators (shutdown_asyncgens)

  EventLoop& owner;
  HandlePool handles;
  ExceptionHandler exception_handler;
  TaskFactory task_factory;  ///< set_task_factory's, or empty
  /// task_factory is eager_task_factory itself: create_task then starts eagerly without calling it.
  bool plain_eager_factory = false;
  bool running = false;
  bool stopping = false;
  bool closed = false;
  bool debug = false;
  /// dbg::kDebug|kStats|kTrace: which of src/debug's hooks run (each site tests this once).
  std::uint8_t hooks = 0;
  /// Takes kTrace from the process-wide switch. Made when a run starts, at each poll (so at most
  /// kPollBudget nodes late) and by a start or stop of tracing on this loop's thread (at once):
  /// not every iteration, where one load and store cost a short iteration 3%.
  void sync_trace_bit() noexcept {
    hooks = static_cast<std::uint8_t>((hooks & ~dbg::kTrace) | dbg::trace_bit());
  }
  dbg::LoopDebugPtr dbg_state;  ///< src/debug's per-loop state, made by the first hook
  /// The loop as an outside reader finds it (weave ps): linked while the loop lives.
  dbg::LoopRecord record;
  std::thread::id thread;
  const std::uint64_t serial;  ///< unique per loop, never reused: the loop's identity
  std::unique_ptr<io::Backend> backend_;
  std::shared_ptr<EntryQueue> entry;  ///< call_soon_threadsafe's queue; outlives the loop

  // The default executor (run_in_executor(nullptr, ...), to_thread): see default_executor.cpp.
  std::shared_ptr<concurrent::Executor> default_executor;  ///< created on first use
  bool executor_shutdown_called = false;  ///< shutdown_default_executor() was called
  std::thread shutdown_thread;            ///< an awaited shutdown's joiner thread

  // src/proc: signal handlers and child processes; closed (not destroyed) by close_services(),
  // which runs after detach_net() so that pipe transports are already detached.
  std::unique_ptr<LoopService> signals;
  std::unique_ptr<LoopService> children;
  void close_services() noexcept {
    if (signals) signals->close();
    if (children) children->close();
  }

  /// CLOCK_MONOTONIC in milliseconds (modulo 2^32) as of the last poll or timer check, which
  /// read a clock anyway: a task starting a wait copies it (TaskCore::wait_since), so that
  /// `weave ps` can tell how long it has waited without a clock read per wait.
  std::uint32_t clock_ms = 0;

 private:
  void note_clock(Clock::time_point now) noexcept {
    clock_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  }
  void drain_threadsafe();
  bool timer_may_be_due() noexcept;
  static Clock::time_point coarse_now() noexcept;
  static Clock::duration coarse_clock_slack() noexcept;
  void fire_timers();
  void run_ready();
  void run_node_timed(Node* n);
  void dispatch(Node* n);
  void iteration_hook(Node* batch);

  /// Nodes run between two non-blocking polls at most (see run_once).
  static constexpr std::uint32_t kPollBudget = 61;

  ReadyQueue ready_;
  TimerQueue timers_;
  std::uint32_t ran_since_poll_ = 0;   ///< nodes run since the last poll
  std::uint32_t ran_since_clock_ = 0;  ///< nodes run since fire_timers read the precise clock
  Clock::duration last_fire_lag_{};    ///< hooks: how late fire_timers() found the first due timer
  Clock::duration coarse_slack_;       ///< two ticks of the coarse clock (timer_may_be_due)
  TaskCore* tasks_ = nullptr;          ///< registry of pending tasks (all_tasks), intrusive
  std::unordered_map<int, FdCallback*> fd_callbacks_[2];  ///< by io::Interest, then fd
  std::vector<FdCallback*> orphaned_;  ///< dropped while queued; freed with the loop

  std::vector<SmallFunction> entry_batch_;  ///< the batch drain_threadsafe() is scheduling
};

/// Resumes a task's coroutine where it waits (task.cpp).
void task_step(TaskCore* t) noexcept;
/// Puts `task` to sleep until `when`: it is its own timer (timer_queue.hpp).
void begin_sleep(TaskCore* task, std::coroutine_handle<> leaf, Clock::time_point when,
                 const CallSite* site = nullptr);

/// Whether `loop` is still alive: a done task's or a future's handle may outlive its loop.
bool loop_alive(const EventLoop* loop) noexcept;

/// The loop of this thread's running EventLoop, or nullptr.
LoopImpl* running_impl() noexcept;
void set_running(EventLoop* loop) noexcept;
void set_current_task(TaskCore* t) noexcept;
/// This thread's current-task variable (task.cpp), for outside readers: the task a loop running
/// on this thread is stepping now.
TaskCore* const* current_task_slot() noexcept;

}  // namespace weave::detail

#pragma once
// The loop's private state. EventLoop (include/weave/loop.hpp) is a thin shell over this, so that
// no internal type reaches the public headers.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/handle_pool.hpp"
#include "core/ready_queue.hpp"
#include "core/timer_queue.hpp"
#include "io/backend.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

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
  template <class Fn>
  void for_each_task(Fn&& fn) const {
    for (TaskCore* t = tasks_; t != nullptr; t = t->reg_next) fn(t);
  }

  /// Debug mode only: RuntimeError when called off the loop's thread.
  void check_thread(const char* what) const;
  void post_threadsafe(std::function<void()> fn);
  void release_backend() noexcept { backend_.reset(); }

  EventLoop& owner;
  HandlePool handles;
  ExceptionHandler exception_handler;
  bool running = false;
  bool stopping = false;
  bool closed = false;
  bool debug = false;
  std::thread::id thread;
  std::unique_ptr<io::Backend> backend_;

 private:
  void drain_threadsafe();
  bool timer_may_be_due() noexcept;
  static Clock::duration coarse_clock_slack() noexcept;
  void fire_timers();
  void run_ready();
  void run_node(Node* n);
  void run_node_timed(Node* n);
  void dispatch(Node* n);

  /// Nodes run between two non-blocking polls at most (see run_once).
  static constexpr std::uint32_t kPollBudget = 61;

  ReadyQueue ready_;
  TimerQueue timers_;
  std::uint32_t ran_since_poll_ = 0;   ///< nodes run since the last poll
  std::uint32_t ran_since_clock_ = 0;  ///< nodes run since fire_timers read the precise clock
  Clock::duration coarse_slack_;       ///< two ticks of the coarse clock (timer_may_be_due)
  TaskCore* tasks_ = nullptr;          ///< registry of pending tasks (all_tasks), intrusive

  std::mutex ts_mutex_;
  std::vector<std::function<void()>> ts_queue_;  ///< guarded by ts_mutex_
  std::vector<std::function<void()>> ts_batch_;  ///< loop thread only
  std::atomic<bool> ts_pending_{false};
};

/// Resumes a task's coroutine where it waits (task.cpp).
void task_step(TaskCore* t) noexcept;
/// Puts `task` to sleep until `when`: it is its own timer (timer_queue.hpp).
void begin_sleep(TaskCore* task, std::coroutine_handle<> leaf, Clock::time_point when);

/// The loop of this thread's running EventLoop, or nullptr.
LoopImpl* running_impl() noexcept;
void set_running(EventLoop* loop) noexcept;
void set_current_task(TaskCore* t) noexcept;

}  // namespace weave::detail

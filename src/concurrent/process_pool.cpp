// ProcessPoolExecutor: a queue of portable jobs, and one manager thread that owns the workers.
//
// submit() encodes nothing; it queues the job under `mutex` and, if the manager may be asleep,
// writes the wake eventfd once (wake_pending avoids a syscall per submit). The manager loops:
// start workers on demand, hand queued jobs to workers (at most kPipeline unanswered calls
// each, so replies stream back while the next call is already there, yet a cancel can still
// catch most of a backlog), send, then poll() every socket and the eventfd. Replies complete
// futures in the manager thread, so done callbacks of process-pool futures run there (as in
// Python's management thread).
//
// A job is marked running (set_running_or_notify_cancel) when it is handed to a worker; until
// then cancel() works, and shutdown(cancel_futures=true) cancels everything still queued.
//
// Failure: a worker that ends unexpectedly (end-of-file on its socket while it owes replies, or
// while it had no reason to exit) breaks the pool: every unanswered and queued future fails with
// BrokenProcessPool, the other workers are killed, all are reaped, and submit() throws
// BrokenProcessPool from then on. Every worker is reaped before the manager exits, and the
// manager is joined by shutdown(wait=true) and the destructor: no zombies, no leaked sockets.

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <thread>

#include "concurrent/cpus.hpp"
#include "concurrent/wire.hpp"
#include "concurrent/worker_process.hpp"
#include "weave/concurrent.hpp"

namespace weave::concurrent {

namespace {

// Started as a worker? Then this serves calls and never returns. Living in this translation
// unit means every program that uses process pools links it.
[[maybe_unused]] const int worker_mode = detail::enter_worker_mode_if_asked();

constexpr std::size_t kPipeline = 8;  // unanswered calls per worker

const char* const kAbrupt =
    "A process in the process pool was terminated abruptly while the future was running or "
    "pending";

}  // namespace

using detail::Job;
using detail::JobQueue;
using detail::WorkerProcess;

struct ProcessPoolExecutor::Impl {
  int max_workers = 0;
  void (*initializer)() = nullptr;
  int max_tasks_per_child = 0;
  int wake_fd = -1;  // eventfd: submit/shutdown -> manager

  std::mutex mutex;              // guards the fields down to `manager`
  JobQueue queue;                // submitted, not handed to a worker yet
  bool closing = false;          // shutdown() was called
  std::string broken;            // why the pool is broken; empty while it is usable
  bool wake_pending = false;     // wake_fd was written and the manager has not woken yet
  std::vector<pid_t> live_pids;  // started and not yet reaped (for kill_workers)
  std::thread manager;
  std::mutex join_mutex;  // serialises joining the manager

  // Manager thread only:
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::vector<std::shared_ptr<Job>> batch;  // reused between rounds

  void wake_locked();
  void run_manager();
  bool start_workers();
  void hand_out();
  bool flush_all();
  bool should_stop();
  bool can_grow();
  void poll_once();
  bool read_replies(WorkerProcess& w);
  int reap(WorkerProcess& w);
  void retire_finished();
  void break_pool(const std::string& reason);
  void stop_workers();
  void signal_workers(int sig);
  void join();
};

void ProcessPoolExecutor::Impl::wake_locked() {
  if (wake_pending) return;
  wake_pending = true;
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
}

void ProcessPoolExecutor::Impl::run_manager() {
  try {
    for (;;) {
      retire_finished();  // first, so that its replacement can start in this same round
      if (!start_workers()) break;
      hand_out();
      flush_all();  // a worker that died is seen at its end-of-file, in poll_once()
      if (should_stop()) break;
      if (!can_grow()) poll_once();
    }
  } catch (const std::exception& e) {
    break_pool(std::string("process pool manager failed: ") + e.what());
  }
  stop_workers();
}

// Starts as many workers as the backlog needs, up to max_workers. False if the pool broke.
bool ProcessPoolExecutor::Impl::start_workers() {
  std::size_t wanted = 0;
  {
    std::lock_guard lock(mutex);
    if (!broken.empty()) return false;
    std::size_t idle = 0;
    for (const auto& w : workers) idle += (!w->retiring && w->inflight.empty()) ? 1 : 0;
    std::size_t room = static_cast<std::size_t>(max_workers) - workers.size();
    wanted = queue.size() > idle ? std::min(queue.size() - idle, room) : 0;
  }
  for (std::size_t i = 0; i < wanted; ++i) {
    try {
      workers.push_back(WorkerProcess::spawn(initializer));
    } catch (const std::exception& e) {
      break_pool(std::string("could not start a worker process: ") + e.what());
      return false;
    }
    std::lock_guard lock(mutex);
    live_pids.push_back(workers.back()->pid());
  }
  return true;
}

// Moves queued jobs to the least busy workers. Cancelled ones are dropped and take no room,
// so it goes on until the workers are full or the queue is empty.
void ProcessPoolExecutor::Impl::hand_out() {
  // Until every worker is started, one call each: the rest of a backlog waits for the workers
  // about to start instead of piling onto the first one.
  std::size_t depth = workers.size() < static_cast<std::size_t>(max_workers) ? 1 : kPipeline;
  auto room_of = [this, depth](const WorkerProcess& w) -> std::size_t {
    if (w.retiring || w.inflight.size() >= depth) return 0;
    std::size_t r = depth - w.inflight.size();
    if (max_tasks_per_child > 0) {
      r = std::min<std::size_t>(r, static_cast<std::size_t>(max_tasks_per_child - w.calls));
    }
    return r;
  };
  for (;;) {
    std::size_t room = 0;
    for (const auto& w : workers) room += room_of(*w);
    {
      std::lock_guard lock(mutex);
      for (; room > 0 && !queue.empty(); --room) batch.push_back(queue.pop());
    }
    if (batch.empty()) return;
    for (std::shared_ptr<Job>& job : batch) {
      if (!job->state().set_running_or_notify_cancel()) continue;
      WorkerProcess* best = nullptr;
      for (const auto& w : workers) {
        if (room_of(*w) > 0 && (!best || w->inflight.size() < best->inflight.size())) {
          best = w.get();
        }
      }
      best->queue_call(job);
      if (max_tasks_per_child > 0 && best->calls >= max_tasks_per_child) best->retiring = true;
    }
    batch.clear();
  }
}

bool ProcessPoolExecutor::Impl::flush_all() {
  bool ok = true;
  for (const auto& w : workers) ok = w->flush() && ok;
  return ok;
}

bool ProcessPoolExecutor::Impl::should_stop() {
  std::lock_guard lock(mutex);
  if (!broken.empty()) return true;
  if (!closing || !queue.empty()) return false;
  return std::all_of(workers.begin(), workers.end(),
                     [](const auto& w) { return w->inflight.empty(); });
}

// True if calls wait while more workers may start: then start them now, not after a poll.
bool ProcessPoolExecutor::Impl::can_grow() {
  std::lock_guard lock(mutex);
  return !queue.empty() && workers.size() < static_cast<std::size_t>(max_workers);
}

void ProcessPoolExecutor::Impl::poll_once() {
  std::vector<pollfd> fds;
  fds.reserve(workers.size() + 1);
  fds.push_back({wake_fd, POLLIN, 0});
  for (const auto& w : workers) {
    fds.push_back({w->fd(), static_cast<short>(POLLIN | (w->wants_write() ? POLLOUT : 0)), 0});
  }
  if (::poll(fds.data(), fds.size(), -1) < 0) return;  // EINTR: just go round again
  if (fds[0].revents != 0) {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(wake_fd, &count, sizeof count);
    std::lock_guard lock(mutex);
    wake_pending = false;
  }
  // Collect the dead first: break_pool() clears `workers`.
  for (std::size_t i = 1; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    WorkerProcess& w = *workers[i - 1];
    bool alive = read_replies(w);
    if (workers.empty()) return;  // the pool broke
    if (!alive) {
      int status = reap(w);
      if (w.retiring && w.inflight.empty()) continue;  // left after its quota: expected
      break_pool(std::string(kAbrupt) + " (" + detail::describe_wait_status(status) + ")");
      return;
    }
  }
}

// Completes the futures of the replies that arrived. False if the worker is gone.
bool ProcessPoolExecutor::Impl::read_replies(WorkerProcess& w) {
  bool alive = w.receive();
  std::string_view payload;
  while (w.next_reply(payload)) {
    try {
      Reader r(payload);
      auto kind = static_cast<detail::Reply>(r.read_uint());
      if (kind == detail::Reply::InitFailed) {
        std::string type = r.read_string();
        throw BrokenProcessPool("A process in the process pool failed to initialize: " + type +
                                ": " + r.read_string());
      }
      if (w.inflight.empty()) throw BrokenProcessPool("A worker sent an unexpected reply");
      std::shared_ptr<Job> job = w.inflight.pop();
      if (kind == detail::Reply::Value) {
        job->deliver(job, r);
      } else {
        std::string type = r.read_string();
        // Moved, not copied: this thread keeps no reference to the exception it hands over
        // (see complete_with in concurrent_job.hpp).
        auto error = std::make_exception_ptr(RemoteError(type, r.read_string()));
        job->state().try_set_exception(detail::state_of(job), std::move(error));
      }
    } catch (const std::exception& e) {
      break_pool(e.what());  // also for a garbled reply: the stream cannot be trusted
      return false;
    }
  }
  return alive;
}

// Reaps workers that finished their quota and owe nothing.
void ProcessPoolExecutor::Impl::retire_finished() {
  for (auto it = workers.begin(); it != workers.end();) {
    WorkerProcess& w = **it;
    if (w.retiring && w.inflight.empty() && !w.wants_write()) {
      reap(w);
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

int ProcessPoolExecutor::Impl::reap(WorkerProcess& w) {
  if (!w.reaped()) {
    std::lock_guard lock(mutex);  // never signal a pid after it is reaped (it may be reused)
    std::erase(live_pids, w.pid());
  }
  return w.reap();
}

void ProcessPoolExecutor::Impl::break_pool(const std::string& reason) {
  JobQueue failed;
  {
    std::lock_guard lock(mutex);
    if (broken.empty()) broken = reason;
    std::swap(failed, queue);
  }
  for (const auto& w : workers) {
    if (!w->reaped()) ::kill(w->pid(), SIGKILL);  // a zombie at worst: the pid is still ours
    while (!w->inflight.empty()) failed.push(w->inflight.pop());
  }
  for (const auto& w : workers) reap(*w);
  workers.clear();
  auto error = std::make_exception_ptr(BrokenProcessPool(reason));
  while (!failed.empty()) {
    std::shared_ptr<Job> job = failed.pop();
    job->state().try_set_exception(detail::state_of(job), error);
  }
}

void ProcessPoolExecutor::Impl::stop_workers() {
  for (const auto& w : workers) reap(*w);  // closing the socket tells it to exit
  workers.clear();
}

void ProcessPoolExecutor::Impl::signal_workers(int sig) {
  JobQueue dropped;
  {
    std::lock_guard lock(mutex);
    closing = true;
    std::swap(dropped, queue);
    for (pid_t pid : live_pids) ::kill(pid, sig);
    if (manager.joinable()) wake_locked();
  }
  while (!dropped.empty()) {
    std::shared_ptr<Job> job = dropped.pop();
    job->state().cancel(detail::state_of(job));
  }
  join();
}

void ProcessPoolExecutor::Impl::join() {
  std::lock_guard join_lock(join_mutex);
  if (manager.joinable() && manager.get_id() != std::this_thread::get_id()) manager.join();
}

ProcessPoolExecutor::ProcessPoolExecutor(int max_workers, std::function<void()> initializer,
                                         int max_tasks_per_child)
    : impl_(std::make_unique<Impl>()) {
  if (max_workers < 0) throw ValueError("max_workers must be greater than 0");
  if (max_tasks_per_child < 0) throw ValueError("max_tasks_per_child must be >= 1");
  impl_->max_workers = max_workers == 0 ? detail::available_cpus() : max_workers;
  impl_->max_tasks_per_child = max_tasks_per_child;
  if (initializer) {
    auto* fn = initializer.target<void (*)()>();
    if (!fn || !*fn) {
      throw ValueError("ProcessPoolExecutor: the initializer must be a plain function pointer");
    }
    impl_->initializer = *fn;
  }
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl_->wake_fd < 0) throw os_error(errno, "eventfd for ProcessPoolExecutor");
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  shutdown(true);
  impl_->join();
  ::close(impl_->wake_fd);
}

int ProcessPoolExecutor::max_workers() const noexcept {
  return impl_->max_workers;
}

void ProcessPoolExecutor::submit_job(std::shared_ptr<detail::Job> job) {
  if (!job->portable()) {
    throw ValueError(
        "ProcessPoolExecutor runs plain function pointers with serializable arguments only");
  }
  Impl& p = *impl_;
  {
    std::lock_guard lock(p.mutex);
    if (!p.broken.empty()) throw BrokenProcessPool(p.broken);
    if (p.closing) throw RuntimeError("cannot schedule new futures after shutdown");
    if (!p.manager.joinable()) p.manager = std::thread([&p] { p.run_manager(); });
    p.queue.push(std::move(job));
    if (p.wake_pending) return;
    p.wake_pending = true;
  }
  // Written after the unlock: the woken manager takes the mutex at once, and would otherwise
  // go back to sleep on it until this thread let go.
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(p.wake_fd, &one, sizeof one);
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  Impl& p = *impl_;
  JobQueue dropped;
  {
    std::lock_guard lock(p.mutex);
    p.closing = true;
    if (cancel_futures) std::swap(dropped, p.queue);
    if (p.manager.joinable()) p.wake_locked();
  }
  while (!dropped.empty()) {
    std::shared_ptr<Job> job = dropped.pop();
    job->state().cancel(detail::state_of(job));
  }
  if (wait) p.join();
}

void ProcessPoolExecutor::terminate_workers() {
  impl_->signal_workers(SIGTERM);
}
void ProcessPoolExecutor::kill_workers() {
  impl_->signal_workers(SIGKILL);
}

}  // namespace weave::concurrent

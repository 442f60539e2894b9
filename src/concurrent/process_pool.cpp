// ProcessPoolExecutor: a queue of portable jobs, worker processes, and one manager thread that
// starts, stops and watches them. One mutex guards the queue and every worker's buffers, socket
// I/O and unanswered calls; only the manager adds or removes workers.
//
// The short path of a call does not go through the manager. submit() sends the call straight
// into the socket of a started worker with room, if nothing is queued (send_direct). A thread
// waiting in result() reads the workers' replies itself (help(), the future's Helper) for as
// long as it would spin anyway, completing whatever futures those replies are for, and refills
// the room they free from the queue. A worker spins on its socket for a while after answering
// (worker_main.cpp). So a quick call costs no thread wake-up at all when CPUs are free.
//
// Otherwise submit() queues the job and, if the manager may be asleep, writes the wake eventfd
// once (wake_pending avoids a syscall per submit). The manager loops: start workers on demand,
// hand queued jobs to workers (at most kPipeline unanswered calls each, so replies stream back
// while the next call is already there, yet a cancel can still catch most of a backlog), send,
// then wait for the eventfd or any socket (two epoll sets, so that helpers can take the
// sockets out of the manager's wait with one call). Replies it reads complete futures in the
// manager thread, so done callbacks run there (as in Python's management thread) or in a helping
// result() caller. A helper handles ordinary replies only; anything else it leaves on the stream
// and wakes the manager for, and it wakes the manager when it took replies the manager waits
// for (at shutdown, or to retire a worker). Futures are completed with no lock held.
//
// A job is marked running (set_running_or_notify_cancel) when it is handed to a worker; until
// then cancel() works, and shutdown(cancel_futures=true) cancels everything still queued.
//
// Failure: a worker that ends unexpectedly (end-of-file on its socket while it owes replies, or
// while it had no reason to exit) breaks the pool: every unanswered and queued future fails with
// BrokenProcessPool, the other workers are killed, all are reaped, and submit() throws
// BrokenProcessPool from then on. Every worker is reaped before the manager exits, and the
// manager is joined by shutdown(wait=true) and the destructor: no zombies, no leaked sockets.

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <string>
#include <thread>

#include "concurrent/cpus.hpp"
#include "concurrent/spin.hpp"
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

/// A reply taken off a worker's stream, to complete its future once no lock is held.
struct Answer {
  std::shared_ptr<Job> job;
  std::string payload;       // a Value reply, whole (the result is decoded by the job)
  std::exception_ptr error;  // or what an Exception reply carried
};

struct ProcessPoolExecutor::Impl final : detail::Helper {
  int max_workers = 0;
  void (*initializer)() = nullptr;
  int max_tasks_per_child = 0;
  int wake_fd = -1;  // eventfd: submit/shutdown/helpers -> manager
  // The manager waits on `outer_ep`: the eventfd, and `inner_ep`, which holds every worker's
  // socket. While a thread helps, it takes inner_ep out of the manager's wait (see help()).
  int outer_ep = -1;
  int inner_ep = -1;

  // Guards the fields down to `manager`, and every worker's buffers, socket I/O and inflight.
  std::mutex mutex;
  JobQueue queue;                // submitted, not handed to a worker yet
  bool closing = false;          // shutdown() was called
  std::string broken;            // why the pool is broken; empty while it is usable
  bool wake_pending = false;     // wake_fd was written and the manager has not woken yet
  int helping = 0;               // threads in help(): the manager does not watch the sockets
  std::vector<pid_t> live_pids;  // started and not yet reaped (for kill_workers)
  // Only the manager adds or removes workers; submit() and helpers use them in place.
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::thread manager;
  std::mutex join_mutex;  // serialises joining the manager

  // Manager thread only:
  std::vector<std::shared_ptr<Job>> batch;  // reused between rounds

  ~Impl() override {
    for (int fd : {wake_fd, outer_ep, inner_ep}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void wake_locked();
  void run_manager();
  bool start_workers();
  void hand_out();
  void hand_out_locked(std::vector<Answer>& failed);
  std::size_t room_of(const WorkerProcess& w, std::size_t depth) const;
  bool send_direct(std::shared_ptr<Job>& job, std::exception_ptr& error);
  bool should_stop();
  bool can_grow();
  void poll_once();
  void watch_sockets(bool on);
  bool collect(WorkerProcess& w, bool manager_side, std::vector<Answer>& answers,
               std::string& failure);
  static void complete(std::vector<Answer>& answers);
  void help(const detail::FutureStateBase& state, std::chrono::nanoseconds budget) override;
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
      hand_out();  // a worker that died is seen at its end-of-file, in poll_once()
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
    std::unique_ptr<WorkerProcess> w;
    try {
      w = WorkerProcess::spawn(initializer);  // slow: not under the mutex
    } catch (const std::exception& e) {
      break_pool(std::string("could not start a worker process: ") + e.what());
      return false;
    }
    std::lock_guard lock(mutex);
    live_pids.push_back(w->pid());
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = w->fd();
    int rc = ::epoll_ctl(inner_ep, EPOLL_CTL_ADD, w->fd(), &e);
    workers.push_back(std::move(w));  // first: a failure below breaks the pool, which reaps it
    if (rc != 0) throw os_error(errno, "epoll_ctl for a process-pool worker");
  }
  return true;
}

// How many more calls `w` may take with `depth` unanswered calls per worker.
std::size_t ProcessPoolExecutor::Impl::room_of(const WorkerProcess& w, std::size_t depth) const {
  if (w.retiring || w.inflight.size() >= depth) return 0;
  std::size_t r = depth - w.inflight.size();
  if (max_tasks_per_child > 0) {
    r = std::min<std::size_t>(r, static_cast<std::size_t>(max_tasks_per_child - w.calls));
  }
  return r;
}

void ProcessPoolExecutor::Impl::hand_out() {
  std::vector<Answer> failed;
  {
    std::lock_guard lock(mutex);
    hand_out_locked(failed);
  }
  complete(failed);
}

// Moves queued jobs to the least busy workers and sends them. Cancelled ones are dropped and
// take no room, so it goes on until the workers are full or the queue is empty. Calls that could
// not be encoded go to `failed`, to be completed once the mutex is released.
void ProcessPoolExecutor::Impl::hand_out_locked(std::vector<Answer>& failed) {
  // Until every worker is started, one call each: the rest of a backlog waits for the workers
  // about to start instead of piling onto the first one.
  std::size_t depth = workers.size() < static_cast<std::size_t>(max_workers) ? 1 : kPipeline;
  while (!queue.empty()) {
    WorkerProcess* best = nullptr;
    for (const auto& w : workers) {
      if (room_of(*w, depth) > 0 && (!best || w->inflight.size() < best->inflight.size())) {
        best = w.get();
      }
    }
    if (!best) break;
    std::shared_ptr<Job> job = queue.pop();
    if (!job->state().set_running_or_notify_cancel()) continue;
    if (std::exception_ptr error = best->queue_call(job)) {
      failed.push_back({std::move(job), {}, std::move(error)});
      continue;
    }
    if (max_tasks_per_child > 0 && best->calls >= max_tasks_per_child) best->retiring = true;
  }
  for (const auto& w : workers) w->flush();  // a dead worker is seen at its end-of-file
}

// submit()'s shortcut, under the mutex: when nothing is queued and a started worker has room,
// the call goes straight into its socket, with no trip through the manager thread. False if the
// call must be queued instead; `error` is set if it could not be encoded.
bool ProcessPoolExecutor::Impl::send_direct(std::shared_ptr<Job>& job, std::exception_ptr& error) {
  if (!queue.empty()) return false;
  // As hand_out(): one call per worker until all have started.
  std::size_t depth = workers.size() < static_cast<std::size_t>(max_workers) ? 1 : kPipeline;
  WorkerProcess* best = nullptr;
  for (const auto& w : workers) {
    if (room_of(*w, depth) > 0 && !w->wants_write() &&
        (!best || w->inflight.size() < best->inflight.size())) {
      best = w.get();
    }
  }
  if (!best || !job->state().set_running_or_notify_cancel()) return false;
  error = best->queue_call(job);
  if (error) return true;
  if (max_tasks_per_child > 0 && best->calls >= max_tasks_per_child) best->retiring = true;
  // What the socket does not take now, the manager sends (it polls for POLLOUT).
  if (!best->flush() || best->wants_write()) wake_locked();
  return true;
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
  {
    std::lock_guard lock(mutex);
    for (const auto& w : workers) {
      bool out = w->wants_write();
      if (w->reaped() || out == w->watching_out) continue;
      epoll_event e{};
      e.events = EPOLLIN | (out ? EPOLLOUT : 0U);
      if (::epoll_ctl(inner_ep, EPOLL_CTL_MOD, w->fd(), &e) == 0) w->watching_out = out;
    }
  }
  epoll_event events[2];
  int n = ::epoll_wait(outer_ep, events, 2, -1);
  if (n < 0) return;  // EINTR: just go round again
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.fd == wake_fd) {
      woken = true;
      std::uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wake_fd, &count, sizeof count);
    }
    // Otherwise inner_ep is ready: which sockets does not matter, every worker is looked at.
  }
  std::vector<Answer> answers;
  std::string failure;
  {
    std::lock_guard lock(mutex);
    if (woken) wake_pending = false;
    for (const auto& w : workers) {
      if (collect(*w, true, answers, failure)) continue;
      if (!failure.empty()) break;
      std::erase(live_pids, w->pid());  // never signal a pid after it is reaped (reuse)
      int status = w->reap();
      if (w->retiring && w->inflight.empty()) continue;  // left after its quota: expected
      failure = std::string(kAbrupt) + " (" + detail::describe_wait_status(status) + ")";
      break;
    }
  }
  complete(answers);
  if (!failure.empty()) break_pool(failure);
}

// Under the mutex: whether the manager's wait includes the workers' sockets.
void ProcessPoolExecutor::Impl::watch_sockets(bool on) {
  epoll_event e{};
  e.events = on ? EPOLLIN : 0U;
  e.data.fd = inner_ep;
  ::epoll_ctl(outer_ep, EPOLL_CTL_MOD, inner_ep, &e);
}

// Takes the replies that arrived from `w` off its stream (under the mutex). False if the worker
// is gone (end-of-file) or, on the manager side, sent something that breaks the pool, described
// in `failure`. A helper handles ordinary replies only: anything else it leaves in place and
// wakes the manager for.
bool ProcessPoolExecutor::Impl::collect(WorkerProcess& w, bool manager_side,
                                        std::vector<Answer>& answers, std::string& failure) {
  if (w.reaped()) return true;  // reaped and waiting to be removed by the manager
  std::size_t taken = answers.size();
  bool alive = w.receive();
  std::string_view payload;
  for (std::size_t mark = w.read_mark(); w.next_reply(payload); mark = w.read_mark()) {
    try {
      Reader r(payload);
      auto kind = static_cast<detail::Reply>(r.read_uint());
      if (kind == detail::Reply::Value && !w.inflight.empty()) {
        answers.push_back({w.inflight.pop(), std::string(payload), nullptr});
        continue;
      }
      if (kind == detail::Reply::Exception && !w.inflight.empty()) {
        std::string type = r.read_string();
        auto error = std::make_exception_ptr(RemoteError(type, r.read_string()));
        answers.push_back({w.inflight.pop(), {}, std::move(error)});
        continue;
      }
      if (!manager_side) {
        w.rewind(mark);
        wake_locked();
        return true;
      }
      if (kind != detail::Reply::InitFailed)
        throw BrokenProcessPool("A worker sent an unexpected reply");
      std::string type = r.read_string();
      failure =
          "A process in the process pool failed to initialize: " + type + ": " + r.read_string();
      return false;
    } catch (const std::exception& e) {
      // A garbled reply: the stream cannot be trusted.
      if (!manager_side) {
        w.rewind(mark);
        wake_locked();
        return true;
      }
      failure = e.what();
      return false;
    }
  }
  // The manager waits for the last replies at shutdown and to retire a worker: if a helper took
  // them, the manager must not sleep on. (The room replies free, helpers fill themselves.)
  if (!manager_side &&
      ((answers.size() > taken && (closing || (w.retiring && w.inflight.empty()))) || !alive)) {
    wake_locked();
  }
  return alive || !manager_side;
}

// Completes the futures of collected replies; callbacks run here, so no lock may be held.
void ProcessPoolExecutor::Impl::complete(std::vector<Answer>& answers) {
  for (Answer& a : answers) {
    if (a.error) {
      // Moved, not copied: this thread keeps no reference to the exception it hands over
      // (see complete_with in concurrent_job.hpp).
      a.job->state().try_set_exception(detail::state_of(a.job), std::move(a.error));
    } else {
      Reader r(a.payload);
      r.read_uint();  // the kind, Value
      a.job->deliver(a.job, r);
    }
  }
  answers.clear();
}

// A thread waiting in result() reads the workers' replies itself while its call is short: the
// answer reaches it without waking the manager thread and then being woken by it.
// A thread waiting in result() reads the workers' replies itself while its call is short: the
// answer reaches it without waking the manager thread and then being woken by it. Meanwhile the
// manager stops watching the sockets, or every reply would still wake it for nothing; when the
// last helper leaves, the manager watches again, and wakes at once for anything left unread (a
// dead worker, a reply a helper does not handle, one nobody waited for).
void ProcessPoolExecutor::Impl::help(const detail::FutureStateBase& state,
                                     std::chrono::nanoseconds budget) {
  // Whether this thread counts in `helping`. It does not while it completes futures: their
  // callbacks may block (even on this pool's shutdown), and the manager must not stay blind
  // to the sockets meanwhile.
  bool counted = false;
  bool spinning = false;
  auto count = [&](bool on) {
    if (counted == on) return;
    counted = on;
    std::lock_guard lock(mutex);
    if (on ? helping++ == 0 : --helping == 0) watch_sockets(!on);
  };
  struct Uncount {
    decltype(count)& uncount;
    ~Uncount() { uncount(false); }
  } uncount{count};
  std::vector<Answer> answers;
  auto take_replies = [&] {
    if (state.done_now()) return true;
    {
      std::lock_guard lock(mutex);
      std::string unused;
      for (const auto& w : workers) collect(*w, false, answers, unused);
      // Whoever takes replies refills the room they free: the manager may not be awake.
      if (!answers.empty() && !queue.empty()) hand_out_locked(answers);
    }
    if (!answers.empty()) {
      count(false);
      complete(answers);
    }
    if (state.done_now()) return true;
    if (spinning) count(true);
    return false;
  };
  if (take_replies() || !detail::spinning_pays()) return;
  spinning = true;
  count(true);
  detail::spin_until(take_replies, budget);
}

// Reaps workers that finished their quota and owe nothing.
void ProcessPoolExecutor::Impl::retire_finished() {
  std::vector<std::unique_ptr<WorkerProcess>> done;
  {
    std::lock_guard lock(mutex);
    for (auto it = workers.begin(); it != workers.end();) {
      WorkerProcess& w = **it;
      if (w.retiring && w.inflight.empty() && !w.wants_write()) {
        std::erase(live_pids, w.pid());  // never signal a pid after it is reaped (reuse)
        done.push_back(std::move(*it));
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& w : done) w->reap();  // waits for the exit: not under the mutex
}

void ProcessPoolExecutor::Impl::break_pool(const std::string& reason) {
  JobQueue failed;
  std::vector<std::unique_ptr<WorkerProcess>> dead;
  {
    std::lock_guard lock(mutex);
    if (broken.empty()) broken = reason;
    std::swap(failed, queue);
    for (const auto& w : workers) {
      if (!w->reaped()) ::kill(w->pid(), SIGKILL);  // a zombie at worst: the pid is still ours
      while (!w->inflight.empty()) failed.push(w->inflight.pop());
      std::erase(live_pids, w->pid());
    }
    dead.swap(workers);
  }
  for (const auto& w : dead) w->reap();
  auto error = std::make_exception_ptr(BrokenProcessPool(reason));
  while (!failed.empty()) {
    std::shared_ptr<Job> job = failed.pop();
    job->state().try_set_exception(detail::state_of(job), error);
  }
}

void ProcessPoolExecutor::Impl::stop_workers() {
  std::vector<std::unique_ptr<WorkerProcess>> done;
  {
    std::lock_guard lock(mutex);
    for (const auto& w : workers) std::erase(live_pids, w->pid());
    done.swap(workers);
  }
  for (const auto& w : done) w->reap();  // closing the socket tells it to exit
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
    : impl_(std::make_shared<Impl>()) {
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
  Impl& p = *impl_;
  p.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p.wake_fd < 0) throw os_error(errno, "eventfd for ProcessPoolExecutor");
  p.outer_ep = ::epoll_create1(EPOLL_CLOEXEC);
  p.inner_ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (p.outer_ep < 0 || p.inner_ep < 0) throw os_error(errno, "epoll for ProcessPoolExecutor");
  for (int fd : {p.wake_fd, p.inner_ep}) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    if (::epoll_ctl(p.outer_ep, EPOLL_CTL_ADD, fd, &e) != 0) {
      throw os_error(errno, "epoll_ctl for ProcessPoolExecutor");
    }
  }
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  shutdown(true);
  impl_->join();
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
  job->state().set_helper(impl_);
  {
    std::unique_lock lock(p.mutex);
    if (!p.broken.empty()) throw BrokenProcessPool(p.broken);
    if (p.closing) throw RuntimeError("cannot schedule new futures after shutdown");
    if (!p.manager.joinable()) p.manager = std::thread([&p] { p.run_manager(); });
    std::exception_ptr error;
    if (p.send_direct(job, error)) {
      lock.unlock();
      if (error) job->state().try_set_exception(detail::state_of(job), std::move(error));
      return;
    }
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

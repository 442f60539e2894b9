// ThreadPoolExecutor: a mutex-guarded FIFO of jobs and up to max_workers threads.
//
// Threads start on demand: submit() starts one when the queue holds more jobs than there are
// idle threads, as Python's _adjust_thread_count does, so a pool used for one call at a time
// keeps one thread. Idle threads sleep on work_cv; `idle` counts them and `wakeups` the signals
// in flight, so submit() signals only a sleeper that no one has signalled yet.
//
// Before sleeping, one idle thread at a time (the first to find the queue empty) spins for a
// while on an atomic flag, so that a call submitted soon after the previous one finished is
// picked up without a futex wake-up of a thread on an idle core. submit() hands a call to the
// spinner by raising the flag instead of signalling a sleeper; only one spinner, because on a
// machine with few cores several would take the CPUs the submitting threads need. The spin is
// short and happens only after a call (or at start), so an idle pool uses no CPU. A worker exits
// when the pool is shut down (or broken) and the queue is empty, which is how shutdown(wait=false)
// still runs everything already queued.
//
// Failure: an initializer that throws breaks the pool for good (Python's BrokenThreadPool):
// every queued future fails with BrokenThreadPool and submit() throws it from then on. Callbacks
// of futures cancelled or failed here run in the thread that did it, outside the pool's mutex.

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "concurrent/cpus.hpp"
#include "concurrent/job_queue.hpp"
#include "concurrent/spin.hpp"
#include "weave/concurrent.hpp"

namespace weave::concurrent {

namespace {

std::atomic<int> pool_counter{0};  // names unnamed pools as Python does

// How long an idle worker watches for the next call before it sleeps: long enough to cover a
// caller's turn-around between result() and its next submit(), even with a wake-up in between.
constexpr std::chrono::microseconds kIdleSpin{50};

}  // namespace

struct ThreadPoolExecutor::Impl {
  int max_workers;
  std::string name_prefix;
  std::function<void()> initializer;

  std::mutex mutex;
  std::condition_variable work_cv;  // a job was queued, or the pool is closing
  detail::JobQueue queue;
  std::vector<std::thread> threads;  // only grows, and only before shutdown
  std::size_t idle = 0;              // threads blocked on work_cv
  std::size_t wakeups = 0;           // notify_one()s sent and not yet consumed by a waker
  bool spinning = false;             // a thread is spinning on spin_go instead of sleeping
  bool spin_claimed = false;         // ... and a submit() counted on it for its call
  std::atomic<bool> spin_go{false};  // raised for the spinner: work arrived or the pool closes
  bool closing = false;              // shutdown() was called
  std::string broken;                // non-empty once an initializer failed: the reason
  std::mutex join_mutex;             // serialises shutdown(wait=true) callers

  void worker(std::size_t index);
  void name_thread(std::size_t index) const;
  void initializer_failed();
  void join_all();
};

void ThreadPoolExecutor::Impl::name_thread(std::size_t index) const {
  std::string name = name_prefix + "_" + std::to_string(index);
  name.resize(std::min<std::size_t>(name.size(), 15));  // the kernel's limit
  pthread_setname_np(pthread_self(), name.c_str());
}

void ThreadPoolExecutor::Impl::worker(std::size_t index) {
  name_thread(index);
  if (initializer) {
    try {
      initializer();
    } catch (...) {
      initializer_failed();
      return;
    }
  }
  std::unique_lock lock(mutex);
  for (;;) {
    if (queue.empty() && !closing && broken.empty() && !spinning) {
      spinning = true;
      lock.unlock();
      detail::spin_until([this] { return spin_go.load(std::memory_order_acquire); }, kIdleSpin);
      lock.lock();
      // Whatever a submit() counted on, it queued under the mutex: the loop below finds it.
      spinning = false;
      spin_claimed = false;
      spin_go.store(false, std::memory_order_relaxed);
    }
    while (queue.empty() && !closing && broken.empty()) {
      ++idle;
      work_cv.wait(lock);
      --idle;
      if (wakeups > 0) --wakeups;  // ours, or one a spurious wake took: either way, awake now
    }
    if (queue.empty()) return;
    std::shared_ptr<detail::Job> job = queue.pop();
    lock.unlock();
    job->run(job);
    job.reset();  // the call's captures die here, not under the lock
    lock.lock();
  }
}

void ThreadPoolExecutor::Impl::initializer_failed() {
  detail::JobQueue drained;
  std::string reason;
  {
    std::lock_guard lock(mutex);
    if (broken.empty())
      broken = "A thread initializer failed, the thread pool is not usable anymore";
    reason = broken;
    std::swap(drained, queue);
    spin_go.store(true, std::memory_order_release);
  }
  work_cv.notify_all();
  auto error = std::make_exception_ptr(BrokenThreadPool(reason));
  while (!drained.empty()) {
    std::shared_ptr<detail::Job> job = drained.pop();
    job->state().try_set_exception(detail::state_of(job), error);
  }
}

void ThreadPoolExecutor::Impl::join_all() {
  std::lock_guard join_lock(join_mutex);
  std::vector<std::thread> joining;
  {
    std::lock_guard lock(mutex);
    for (const std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        throw RuntimeError("cannot join the current thread: shutdown(wait=true) from a worker");
      }
    }
    joining.swap(threads);
  }
  for (std::thread& t : joining) t.join();
}

ThreadPoolExecutor::ThreadPoolExecutor(int max_workers, std::string thread_name_prefix,
                                       std::function<void()> initializer)
    : impl_(std::make_unique<Impl>()) {
  if (max_workers < 0) throw ValueError("max_workers must be greater than 0");
  impl_->max_workers = max_workers == 0 ? std::min(32, detail::available_cpus() + 4) : max_workers;
  if (thread_name_prefix.empty()) {
    thread_name_prefix = "ThreadPoolExecutor-" + std::to_string(pool_counter++);
  }
  impl_->name_prefix = std::move(thread_name_prefix);
  impl_->initializer = std::move(initializer);
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  shutdown(true);
}

int ThreadPoolExecutor::max_workers() const noexcept {
  return impl_->max_workers;
}

void ThreadPoolExecutor::submit_job(std::shared_ptr<detail::Job> job) {
  Impl& p = *impl_;
  std::unique_lock lock(p.mutex);
  if (!p.broken.empty()) throw BrokenThreadPool(p.broken);
  if (p.closing) throw RuntimeError("cannot schedule new futures after shutdown");
  bool spinner_free = p.spinning && !p.spin_claimed;
  // Start a thread first: if that fails, nothing was queued and the caller sees why.
  if (p.queue.size() + 1 > p.idle + (spinner_free ? 1 : 0) &&
      p.threads.size() < static_cast<std::size_t>(p.max_workers)) {
    std::size_t index = p.threads.size();
    p.threads.emplace_back([&p, index] { p.worker(index); });
  }
  p.queue.push(std::move(job));
  bool wake = false;
  if (spinner_free) {
    p.spin_claimed = true;
    p.spin_go.store(true, std::memory_order_release);
  } else if (p.idle > p.wakeups) {
    // Signal only a sleeper nobody signalled yet: a burst of submits costs one wakeup per
    // sleeping thread, not one per submit.
    wake = true;
    ++p.wakeups;
  }
  lock.unlock();
  if (wake) p.work_cv.notify_one();
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  Impl& p = *impl_;
  detail::JobQueue dropped;
  {
    std::lock_guard lock(p.mutex);
    p.closing = true;
    if (cancel_futures) std::swap(dropped, p.queue);
    p.spin_go.store(true, std::memory_order_release);
  }
  p.work_cv.notify_all();
  while (!dropped.empty()) {
    std::shared_ptr<detail::Job> job = dropped.pop();
    job->state().cancel(detail::state_of(job));
  }
  if (wait) p.join_all();
}

}  // namespace weave::concurrent

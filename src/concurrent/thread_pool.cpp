// ThreadPoolExecutor: a mutex-guarded FIFO of jobs and up to max_workers threads.
//
// Threads start on demand: submit() starts one when the queue holds more jobs than there are
// idle threads, as Python's _adjust_thread_count does, so a pool used for one call at a time
// keeps one thread. Idle threads sleep on work_cv; `idle` counts them and `wakeups` the signals
// in flight, so submit() signals only a sleeper that no one has signalled yet. A worker exits when
// the pool is shut down (or broken) and the queue is empty, which is how shutdown(wait=false) still
// runs everything already queued.
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
#include "weave/concurrent.hpp"

namespace weave::concurrent {

namespace {

std::atomic<int> pool_counter{0};  // names unnamed pools as Python does

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
  // Start a thread first: if that fails, nothing was queued and the caller sees why.
  if (p.queue.size() + 1 > p.idle && p.threads.size() < static_cast<std::size_t>(p.max_workers)) {
    std::size_t index = p.threads.size();
    p.threads.emplace_back([&p, index] { p.worker(index); });
  }
  p.queue.push(std::move(job));
  // Signal only a sleeper nobody signalled yet: a burst of submits costs one wakeup per
  // sleeping thread, not one per submit.
  bool wake = p.idle > p.wakeups;
  if (wake) ++p.wakeups;
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
  }
  p.work_cv.notify_all();
  while (!dropped.empty()) {
    std::shared_ptr<detail::Job> job = dropped.pop();
    job->state().cancel(detail::state_of(job));
  }
  if (wait) p.join_all();
}

}  // namespace weave::concurrent

// The stall watchdog of debug mode: a thread beside each debug-mode loop that reports a step
// still running after slow_callback_duration, while it blocks the loop. It reads the loop
// thread's CPU clock (pthread_getcpuclockid) and its native stack: the loop thread is signalled
// and its handler writes backtrace() into a preallocated buffer (backtrace() is loaded once
// beforehand, so that the handler does not allocate). A blocking system call in that step sees
// the signal as EINTR, as with any signal. Reports are rate-limited, with a count of the rest.

#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "core/loop_impl.hpp"
#include "debug/debug_mode.hpp"

namespace weave::detail::dbg {

namespace {
constexpr int kFrames = 64;
void* g_frames[kFrames];
std::atomic<int> g_frame_count{-1};
std::atomic<bool> g_want_frames{false};
std::mutex g_capture_mutex;  // one backtrace capture at a time, process-wide
int g_signal = 0;

void on_backtrace_signal(int) {
  const int saved = errno;
  if (g_want_frames.exchange(false)) g_frame_count.store(backtrace(g_frames, kFrames));
  errno = saved;
}

int install_signal() {
  static const int sig = [] {
    void* warm[2];
    (void)backtrace(warm, 2);  // loads the unwinder now: the handler must not allocate
    const int s = SIGRTMIN + 5;
    struct sigaction sa {};
    sa.sa_handler = on_backtrace_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(s, &sa, nullptr);
    return s;
  }();
  return sig;
}

struct Limiter {
  std::mutex m;
  std::uint32_t count = 10;
  Clock::duration window = std::chrono::minutes(1);
  std::deque<Clock::time_point> recent;
  std::uint64_t pending_suppressed = 0;
  std::uint64_t reported = 0, suppressed = 0;
  std::function<void(const StallReport&)> reporter;
};
Limiter& limiter() {
  static Limiter* l = new Limiter;  // used by watchdog threads until the process ends
  return *l;
}
}  // namespace

std::int64_t thread_cpu_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Watchdog {
  LoopImpl* loop;
  pthread_t loop_thread;
  clockid_t cpu_clock{};
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<std::uint64_t> seq{0};  ///< odd while a step runs
  std::atomic<std::int64_t> slow_ns{0};
  Clock::time_point start;     // under m
  std::int64_t cpu_start = 0;  // under m
  std::string task, chain;     // under m
  std::thread thread;

  void run();
  void report(std::uint64_t s);
};

Watchdog* watchdog_start(LoopImpl& l) {
  auto* w = new Watchdog;
  w->loop = &l;
  w->loop_thread = pthread_self();
  if (pthread_getcpuclockid(w->loop_thread, &w->cpu_clock) != 0) w->cpu_clock = CLOCK_MONOTONIC;
  g_signal = install_signal();
  w->thread = std::thread([w] { w->run(); });
  return w;
}

void watchdog_stop(Watchdog* w) noexcept {
  {
    std::lock_guard lock(w->m);
    w->stop = true;
  }
  w->cv.notify_one();
  w->thread.join();
  delete w;
}

void watchdog_step_begin(Watchdog* w, const TaskCore* t, std::int64_t cpu_ns) noexcept {
  try {
    std::lock_guard lock(w->m);
    w->start = Clock::now();
    w->cpu_start = cpu_ns;
    w->task = t != nullptr ? "Task '" + task_name(t) + "'" : "a callback";
    w->chain = t != nullptr ? await_chain(t) : std::string();
    w->slow_ns.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(w->loop->owner.slow_callback_duration)
            .count(),
        std::memory_order_relaxed);
    w->seq.fetch_add(1, std::memory_order_release);
  } catch (...) {
  }
}

void watchdog_step_end(Watchdog* w) noexcept {
  std::lock_guard lock(w->m);
  w->seq.fetch_add(1, std::memory_order_release);
}

void Watchdog::run() {
  std::unique_lock lock(m);
  std::uint64_t reported = 0;
  while (!stop) {
    const auto slow = std::chrono::nanoseconds(std::max<std::int64_t>(slow_ns.load(), 1000000));
    cv.wait_for(lock, std::max<std::chrono::nanoseconds>(slow / 4, std::chrono::milliseconds(1)));
    if (stop) break;
    const std::uint64_t s = seq.load(std::memory_order_acquire);
    if ((s & 1) == 0 || s == reported) continue;
    if (Clock::now() - start < std::chrono::nanoseconds(slow_ns.load())) continue;
    reported = s;
    report(s);
  }
}

void Watchdog::report(std::uint64_t s) {
  // Called with m held: the step cannot end (its end takes m) until the report is made, so the
  // loop thread is still inside it when it is signalled.
  Limiter& lim = limiter();
  StallReport r;
  {
    std::lock_guard ll(lim.m);
    const Clock::time_point now = Clock::now();
    while (!lim.recent.empty() && now - lim.recent.front() > lim.window) lim.recent.pop_front();
    if (lim.recent.size() >= lim.count) {
      ++lim.pending_suppressed;
      ++lim.suppressed;
      return;
    }
    lim.recent.push_back(now);
    ++lim.reported;
    r.suppressed = std::exchange(lim.pending_suppressed, 0);
  }
  (void)s;
  r.task = task;
  r.await_chain = chain;
  r.wall = Clock::now() - start;
  timespec ts{};
  clock_gettime(cpu_clock, &ts);
  r.cpu = std::chrono::nanoseconds(static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec -
                                   cpu_start);
  {
    std::lock_guard cl(g_capture_mutex);
    g_frame_count.store(-1);
    g_want_frames.store(true);
    if (pthread_kill(loop_thread, g_signal) == 0) {
      for (int i = 0; i < 200 && g_frame_count.load() < 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    g_want_frames.store(false);
    const int n = g_frame_count.load();
    if (n > 0) {
      char** names = backtrace_symbols(g_frames, n);
      for (int i = 0; i < n; ++i) {
        r.backtrace.emplace_back(names != nullptr ? names[i] : "?");
      }
      std::free(names);
    }
  }
  char head[160];
  std::snprintf(head, sizeof head,
                "weave: stall: %s has blocked its loop for %.3f s (CPU %.3f s) and still runs",
                r.task.c_str(), std::chrono::duration<double>(r.wall).count(),
                std::chrono::duration<double>(r.cpu).count());
  r.text = head;
  if (r.suppressed != 0) {
    r.text += " (" + std::to_string(r.suppressed) + " stall(s) not reported before this one)";
  }
  if (!r.await_chain.empty()) r.text += "\n await chain:\n" + r.await_chain;
  if (!r.backtrace.empty()) {
    r.text += "\n loop thread backtrace:";
    for (std::size_t i = 0; i < r.backtrace.size(); ++i) {
      r.text += "\n  #" + std::to_string(i) + " " + r.backtrace[i];
    }
  }
  trace_stall_dump();
  std::function<void(const StallReport&)> fn;
  {
    std::lock_guard ll(lim.m);
    fn = lim.reporter;
  }
  if (fn) {
    fn(r);
  } else {
    std::fprintf(stderr, "%s\n", r.text.c_str());
  }
}

}  // namespace weave::detail::dbg

namespace weave {

void set_stall_reporter(std::function<void(const StallReport&)> fn) {
  auto& lim = detail::dbg::limiter();
  std::lock_guard lock(lim.m);
  lim.reporter = std::move(fn);
}

void set_stall_rate_limit(std::uint32_t count, Clock::duration window) {
  auto& lim = detail::dbg::limiter();
  std::lock_guard lock(lim.m);
  lim.count = count;
  lim.window = window;
  lim.recent.clear();
  lim.pending_suppressed = 0;
}

StallCounts stall_counts() {
  auto& lim = detail::dbg::limiter();
  std::lock_guard lock(lim.m);
  return {lim.reported, lim.suppressed};
}

}  // namespace weave

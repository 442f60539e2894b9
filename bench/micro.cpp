// micro: the runtime microbenchmarks of the peer harness (peers/micro-bench.sh), on one event
// loop in one thread. usage: micro TEST N
//   spawn   N tasks that each `co_await sleep(0s)` once; the handles are kept and each is awaited
//   yield   one task doing `co_await sleep(0s)` N times
//   timers  N tasks each sleeping a random 0..999 ms; every timer must fire, never early, and in
//           deadline order (checked below); prints the latest deadline beside the total time
//   idle    N tasks each waiting on one Event that is never set; bytes per task
// An optional third argument switches src/debug's machinery on for the run, to price it against
// the same binary with it off (bench/debug_overhead.sh): `stats` (loop.set_stats), `trace` (a
// trace whose buffer holds the whole run, so that every event is recorded) or `flight` (the
// flight recorder: the default 8 MiB ring, the oldest events overwritten); the line then ends in
// trace_bytes= (the buffers' memory) and trace_dropped=. The trace is never written out.
// It prints one line: test=T n=N secs=S [tasks_per_s= | ns_per_yield=] base_rss_kb= peak_rss_kb=
// bytes_per_task=, as the peers do (base is VmRSS before the loop exists, peak is VmHWM at the
// end). The process leaves through _Exit, as the peers do, so that a million suspended tasks are
// not torn down inside the measurement's process lifetime for nothing.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "weave/trace.hpp"
#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Clock;
using weave::Coro;

long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t kl = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, kl, key) == 0 && line.size() > kl && line[kl] == ':') {
      return std::atol(line.c_str() + kl + 1);
    }
  }
  return 0;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- spawn ------------------------------------------------------------------------------------

long g_remaining = 0;

Coro<void> spawned_child() {
  co_await weave::sleep(0s);
  --g_remaining;
}

Coro<void> spawn_all(long n) {
  std::vector<weave::Task<void>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) tasks.push_back(weave::create_task(spawned_child()));
  for (auto& t : tasks) co_await t;
}

// ---- yield ------------------------------------------------------------------------------------

Coro<void> yielder(long n) {
  for (long i = 0; i < n; ++i) co_await weave::sleep(0s);
}

Coro<void> yield_main(long n) {
  co_await weave::create_task(yielder(n));
}

// ---- timers -----------------------------------------------------------------------------------
// The order check. Task i's first step reads the clock (start_i) just before sleep(d_i) reads it
// again to set the real deadline D_i; the first steps run one after another, so start_i <=
// D_i - d_i <= start_(i+1). Each task thus knows D_i within [start_i + d_i, start_(i+1) + d_i]
// (task i + 1 writes its start into task i's frame). Timers fired in deadline order mean that
// every task fired earlier has D <= this task's D, so the largest lower bound seen so far may not
// exceed this task's upper bound. The check is sound (a correct heap never fails it) and catches
// any inversion wider than the gap between two task starts, a fraction of a microsecond.

struct TimerCheck {
  long n = 0;
  long fired = 0;
  long early = 0;     ///< woke before its deadline
  long disorder = 0;  ///< fired after a timer whose deadline was certainly later
  Clock::time_point* prev_next_start = nullptr;  ///< where the previous task wants our start
  Clock::time_point max_lower{};
  Clock::time_point latest{};  ///< the latest deadline (its lower bound)
  weave::Event all_fired;
};
TimerCheck* g_check = nullptr;

/// The checks after a sleep, in a plain function: what it computes stays off the frame.
void check_fired(TimerCheck& c, int ms, Clock::time_point start, Clock::time_point next_start) {
  const auto d = std::chrono::milliseconds(ms);
  const Clock::time_point now = Clock::now();
  // Every first step ran in one batch, before any timer could fire: the first wake-up bounds
  // the last task's deadline.
  if (c.prev_next_start != nullptr) {
    *c.prev_next_start = now;
    c.prev_next_start = nullptr;
    if (next_start == Clock::time_point{}) next_start = now;
  }
  const Clock::time_point lower = start + d;
  const Clock::time_point upper = next_start + d;
  if (now < lower) ++c.early;
  // sleep(0s) is asyncio's bare yield, not a timer: it resumes one iteration later, ahead of
  // timers that fell due meanwhile, so those tasks take no part in the order check.
  if (ms > 0) {
    if (c.max_lower > upper) ++c.disorder;
    if (lower > c.max_lower) c.max_lower = lower;
  }
  if (lower > c.latest) c.latest = lower;  // the lower bound: no flattering of the ratio
  if (++c.fired == c.n) c.all_fired.set();
}

Coro<void> sleeper(int ms) {
  const Clock::time_point start = Clock::now();
  Clock::time_point next_start{};  // written by the next task's first step
  if (g_check->prev_next_start != nullptr) *g_check->prev_next_start = start;
  g_check->prev_next_start = &next_start;
  co_await weave::sleep(std::chrono::milliseconds(ms));
  check_fired(*g_check, ms, start, next_start);
}

Coro<void> timers_main(long n) {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;  // tokio_micro's xorshift, same deadlines
  for (long i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    weave::create_task(sleeper(static_cast<int>(x % 1000)));
  }
  co_await g_check->all_fired.wait();
}

// ---- idle -------------------------------------------------------------------------------------

long g_idle_started = 0;

Coro<void> idle_waiter(weave::Event& never) {
  ++g_idle_started;
  co_await never.wait();
}

Coro<void> idle_main(long n, weave::Event& never) {
  for (long i = 0; i < n; ++i) weave::create_task(idle_waiter(never));
  while (g_idle_started < n) co_await weave::sleep(0s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: micro spawn|yield|timers|idle N [stats|trace|flight]\n");
    return 2;
  }
  const std::string test = argv[1];
  const long n = std::atol(argv[2]);
  if (n <= 0) {
    std::fprintf(stderr, "N must be positive\n");
    return 2;
  }
  const long base = status_kb("VmRSS");
  char extra[160] = "";
  const std::string mode = argc > 3 ? argv[3] : "";
  weave::EventLoop loop;
  if (mode == "stats") {
    loop.set_stats(true);
  } else if (mode == "trace" || mode == "flight") {
    weave::trace::Options o;
    o.path = "/dev/null";
    o.flight_recorder = mode == "flight";
    if (mode == "trace") o.memory_budget = o.thread_buffer = std::size_t{1} << 30;
    weave::trace::start(o);
  } else if (!mode.empty()) {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  weave::Event never;
  TimerCheck check;
  const Clock::time_point t0 = Clock::now();
  if (test == "spawn") {
    g_remaining = n;
    loop.run_until_complete(spawn_all(n));
    const double s = seconds_since(t0);
    if (g_remaining != 0) {
      std::fprintf(stderr, "spawn: %ld tasks did not finish\n", g_remaining);
      return 1;
    }
    std::snprintf(extra, sizeof extra, " tasks_per_s=%.0f", static_cast<double>(n) / s);
  } else if (test == "yield") {
    loop.run_until_complete(yield_main(n));
    const double s = seconds_since(t0);
    std::snprintf(extra, sizeof extra, " ns_per_yield=%.1f", s * 1e9 / static_cast<double>(n));
  } else if (test == "timers") {
    check.n = n;
    g_check = &check;
    loop.run_until_complete(timers_main(n));
    const double latest = std::chrono::duration<double>(check.latest - t0).count();
    if (check.fired != n || check.early != 0 || check.disorder != 0) {
      std::fprintf(stderr, "timers: fired=%ld early=%ld out_of_order=%ld\n", check.fired,
                   check.early, check.disorder);
      return 1;
    }
    std::snprintf(extra, sizeof extra, " latest_deadline_s=%.3f in_order=1", latest);
  } else if (test == "idle") {
    loop.run_until_complete(idle_main(n, never));
  } else {
    std::fprintf(stderr, "unknown test %s\n", test.c_str());
    return 2;
  }
  const double secs = seconds_since(t0);
  const long peak = status_kb("VmHWM");
  if (weave::trace::active()) {
    std::snprintf(extra + std::strlen(extra), sizeof extra - std::strlen(extra),
                  " trace_bytes=%zu trace_dropped=%llu", weave::trace::memory_used(),
                  static_cast<unsigned long long>(weave::trace::dropped()));
  }
  std::printf("test=%s n=%ld secs=%.3f%s base_rss_kb=%ld peak_rss_kb=%ld bytes_per_task=%.0f\n",
              test.c_str(), n, secs, extra, base, peak,
              static_cast<double>(peak - base) * 1024.0 / static_cast<double>(n));
  std::fflush(stdout);
  std::_Exit(0);
}

// A weave process for `weave ps` / `weave pstree` to inspect (tests/test_ps.cpp,
// bench/pstree_bench.cpp). It sets up the tasks its mode asks for, writes "ready" on stdout, and
// stays so until it is killed:
//   mixed N    N tasks in mixed waits: sleep, Queue::get, Event::wait, gather's children under
//              gatherers, TaskGroup children under group owners (a fifth of N each)
//   spin       a few waiting tasks and one, "spinner", whose step never ends
//   cycle      task "A" awaits task "B", which awaits "A"
//   spawn      about 100,000 short-lived named tasks a second
//   many N     N tasks waiting on one Event
//   corrupt    tasks whose fields the reader must survive: a garbage leaf frame, a frame that
//              names itself as its awaiter, a done-waiter list in unmapped memory; and one "fine"
//   threads    three loops: the main thread's and two more, each with a task "on-<thread>"
//   stats      statistics on (WEAVE_STATS=1): "yielder" yields 10 times, then waits on an event;
//              "sleeper" sleeps
//
// Under YAMA's ptrace_scope 1 only an ancestor may read a process's memory, and the reader (the
// `weave` program the test starts) is the target's sibling: the target allows any reader. That
// is this program's business, never the library's.

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {

weave::Event g_never;  // nobody sets it
weave::Queue<int> g_queue;
std::optional<weave::TaskRef> g_a, g_b;
volatile bool g_spin = true;

void announce() {
  std::printf("ready %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
}

weave::Coro<void> sleeper() {
  co_await weave::sleep(1h);  // ps_target: sleeper's wait
}
weave::Coro<void> getter() {
  (void)co_await g_queue.get();
}
weave::Coro<void> waiter() {
  co_await g_never.wait();
}

weave::Coro<void> gatherer(int first, int count) {
  std::vector<weave::Task<void>> children;
  for (int i = 0; i < count; ++i) {
    children.push_back(weave::create_task(sleeper(), "gathered-" + std::to_string(first + i)));
  }
  co_await weave::gather(std::move(children));
}

weave::Coro<void> group_owner(int first, int count) {
  co_await weave::task_group([first, count](weave::TaskGroup& g) -> weave::Coro<void> {
    for (int i = 0; i < count; ++i)
      g.create_task(sleeper(), "grouped-" + std::to_string(first + i));
    co_return;
  });
}

weave::Coro<void> mixed(int n) {
  const int part = n / 5;
  std::vector<weave::Task<void>> keep;
  for (int i = 0; i < part; ++i) {
    keep.push_back(weave::create_task(sleeper(), "sleeper-" + std::to_string(i)));
    keep.push_back(weave::create_task(getter(), "getter-" + std::to_string(i)));
    keep.push_back(weave::create_task(waiter(), "waiter-" + std::to_string(i)));
  }
  constexpr int kOwners = 20;
  for (int i = 0; i < kOwners; ++i) {
    keep.push_back(weave::create_task(gatherer(i * (part / kOwners), part / kOwners),
                                      "gatherer-" + std::to_string(i)));
    keep.push_back(weave::create_task(group_owner(i * (part / kOwners), part / kOwners),
                                      "group-owner-" + std::to_string(i)));
  }
  co_await weave::sleep(50ms);  // every task has started and waits
  announce();
  co_await g_never.wait();
}

weave::Coro<void> spinner() {
  announce();
  while (g_spin) {
  }
  co_return;
}

weave::Coro<void> spin() {
  std::vector<weave::Task<void>> keep;
  for (int i = 0; i < 10; ++i)
    keep.push_back(weave::create_task(waiter(), "idle-" + std::to_string(i)));
  co_await weave::sleep(10ms);
  keep.push_back(weave::create_task(spinner(), "spinner"));
  co_await g_never.wait();
}

weave::Coro<void> await_other(bool a) {
  co_await weave::sleep(5ms);
  co_await (a ? *g_b : *g_a);
}

weave::Coro<void> cycle() {
  weave::Task<void> a = weave::create_task(await_other(true), "A");
  weave::Task<void> b = weave::create_task(await_other(false), "B");
  g_a = weave::TaskRef(a);
  g_b = weave::TaskRef(b);
  co_await weave::sleep(50ms);
  announce();
  co_await g_never.wait();
}

weave::Coro<void> short_lived(int ms) {
  co_await weave::sleep(std::chrono::milliseconds(ms));
}

weave::Coro<void> spawn() {
  announce();
  for (long k = 0;; ++k) {
    for (int i = 0; i < 100; ++i) {
      weave::create_task(short_lived(static_cast<int>((k + i) % 20)),
                         "spawn-" + std::to_string(k * 100 + i));
    }
    co_await weave::sleep(1ms);
  }
}

weave::Coro<void> many(int n) {
  std::vector<weave::Task<void>> keep;
  keep.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) keep.push_back(weave::create_task(waiter()));
  co_await weave::sleep(10ms);
  announce();
  co_await g_never.wait();
}

weave::Coro<void> nested_wait() {
  co_await g_never.wait();
}
weave::Coro<void> outer_wait() {
  co_await nested_wait();
}

weave::Coro<void> corrupt() {
  weave::Task<void> bad_leaf = weave::create_task(waiter(), "bad-leaf");
  weave::Task<void> bad_frames = weave::create_task(outer_wait(), "bad-frames");
  weave::Task<void> bad_waiters = weave::create_task(waiter(), "bad-waiters");
  weave::Task<void> fine = weave::create_task(outer_wait(), "fine");
  co_await weave::sleep(10ms);
  // None of them is ever resumed again: the process is killed as it is.
  weave::TaskRef(bad_leaf).core()->leaf =
      std::coroutine_handle<>::from_address(reinterpret_cast<void*>(0x10));
  void* leaf = weave::TaskRef(bad_frames).core()->leaf.address();
  std::coroutine_handle<weave::detail::Promise<void>>::from_address(leaf).promise().link_ = leaf;
  void* unmapped = reinterpret_cast<void*>(std::uintptr_t{0x7ff000000000});
  static_assert(sizeof(weave::detail::WaiterList) == sizeof(void*));  // its head pointer only
  std::memcpy(static_cast<void*>(&weave::TaskRef(bad_waiters).core()->done_waiters), &unmapped,
              sizeof unmapped);
  announce();
  co_await g_never.wait();
}

weave::Coro<void> park(weave::Event& e) {
  co_await e.wait();
}

weave::Coro<void> parked(std::string name, std::atomic<int>* started) {
  weave::Event never;  // this loop's own: an Event belongs to the loop that awaits it
  weave::Task<void> t = weave::create_task(park(never), std::move(name));
  co_await weave::sleep(10ms);
  started->fetch_add(1);
  co_await t;
}

weave::Coro<void> threads() {
  static std::atomic<int> started{0};
  for (int i = 0; i < 2; ++i) {
    std::thread([] { weave::run(parked("on-" + std::to_string(::gettid()), &started)); }).detach();
  }
  weave::Event never;
  weave::Task<void> t = weave::create_task(park(never), "on-" + std::to_string(::gettid()));
  while (started.load() < 2) co_await weave::sleep(1ms);
  announce();
  co_await t;
}

weave::Coro<void> yield_then_wait() {
  for (int i = 0; i < 10; ++i) co_await weave::sleep(0s);
  co_await g_never.wait();
}

weave::Coro<void> with_stats() {
  weave::Task<void> y = weave::create_task(yield_then_wait(), "yielder");
  weave::Task<void> s = weave::create_task(sleeper(), "sleeper");
  co_await weave::sleep(20ms);
  announce();
  co_await g_never.wait();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef PR_SET_PTRACER
  ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);  // fails harmlessly without YAMA
#endif
  const std::string mode = argc > 1 ? argv[1] : "";
  const int n = argc > 2 ? std::atoi(argv[2]) : 0;
  if (mode == "mixed") weave::run(mixed(n));
  if (mode == "spin") weave::run(spin());
  if (mode == "undumpable") {
    // Only CAP_SYS_PTRACE may read a process that is not dumpable, whoever its user is.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    weave::run(spin());
  }
  if (mode == "cycle") weave::run(cycle());
  if (mode == "spawn") weave::run(spawn());
  if (mode == "many") weave::run(many(n));
  if (mode == "threads") weave::run(threads());
  if (mode == "corrupt") weave::run(corrupt());
  if (mode == "stats") {
    ::setenv("WEAVE_STATS", "1", 1);  // read when the loop is made
    weave::run(with_stats());
  }
  std::fprintf(stderr,
               "usage: ps_target mixed N | spin | undumpable | cycle | spawn | many N | threads | "
               "corrupt | stats\n");
  return 2;
}

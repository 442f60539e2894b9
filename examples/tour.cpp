// The tour: each asyncio idea, working and measured. Run it with `make tour`.
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::Coro;

namespace {
double since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}
Coro<void> foo() {
  std::puts("Running in foo");
  co_await weave::sleep(0s);
  std::puts("Explicit context switch to foo again");
}
Coro<void> bar() {
  std::puts("Explicit context to bar");
  co_await weave::sleep(0s);
  std::puts("Implicit context switch back to bar");
}
Coro<int> query(int id) {
  co_await weave::sleep(50ms);
  co_return id;
}
// A named coroutine, not a temporary lambda: a lambda's captures die with the lambda object.
Coro<int> consume(weave::Queue<int>& q, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q.get();
  co_return sum;
}
Coro<void> worker(const char* name, std::chrono::milliseconds work) {
  try {
    co_await weave::sleep(work);
    std::printf("  %s finished\n", name);
  } catch (const weave::CancelledError&) {
    std::printf("  %s cancelled\n", name);
    throw;
  }
}
Coro<void> failing_worker(std::chrono::milliseconds after) {
  co_await weave::sleep(after);
  std::puts("  failing child raises ValueError");
  throw weave::ValueError("bad input");
}
Coro<void> taskgroup_section() {
  std::puts("\n== TaskGroup: a failing child cancels its siblings");
  const auto t0 = weave::Clock::now();
  try {
    co_await weave::task_group([](weave::TaskGroup& tg) -> Coro<void> {
      tg.create_task(worker("fast child", 5ms));
      tg.create_task(worker("slow child", 1s));
      tg.create_task(failing_worker(20ms));
      co_return;
    });
  } catch (const weave::ExceptionGroup& group) {
    std::printf("ExceptionGroup: %s, after %.1f ms (not 1 s)\n", group.what(), since(t0));
  }
}
Coro<void> tour() {
  std::puts("== gather(foo(), bar())");
  co_await weave::gather(foo(), bar());

  std::puts("\n== two 50 ms queries, one after the other, then gathered");
  auto t0 = weave::Clock::now();
  co_await query(1);
  co_await query(2);
  std::printf("sequential: %.1f ms\n", since(t0));
  t0 = weave::Clock::now();
  co_await weave::gather(query(1), query(2));
  std::printf("gathered:   %.1f ms\n", since(t0));

  std::puts("\n== producer/consumer over a Queue");
  weave::Queue<int> q(2);
  auto consumer = weave::create_task(consume(q, 5));
  for (int i = 1; i <= 5; ++i) co_await q.put(i);
  std::printf("consumer summed %d\n", co_await consumer);

  co_await taskgroup_section();

  std::puts("\n== timeout(20 ms, sleep(1 s))");
  t0 = weave::Clock::now();
  try {
    co_await weave::timeout(20ms, weave::sleep(1s));
  } catch (const weave::TimeoutError&) {
    std::printf("TimeoutError after %.1f ms\n", since(t0));
  }
}
}  // namespace

int main() {
  weave::run(tour());
  return 0;
}

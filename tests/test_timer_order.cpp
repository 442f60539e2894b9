// The loop's timer ordering, as asyncio's: timers fire by (deadline, scheduling order), a sleeping
// task resumes one iteration after its deadline (asyncio's sleep is call_later + set_result), and
// withdrawing a sleep or cancelling a TimerHandle removes exactly that timer.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "support/bounded.hpp"

using namespace std::chrono_literals;
using weave::Clock;
using weave::Coro;
using weave_test::run_bounded;

namespace {

Coro<void> sleep_then_log(Clock::duration d, std::string name, std::vector<std::string>& log) {
  co_await weave::sleep(d);
  log.push_back(name);
}

Coro<void> equal_deadlines_fire_in_scheduling_order(std::vector<int>& order) {
  auto& loop = weave::get_running_loop();
  const auto when = Clock::now() + 5ms;
  for (int i = 0; i < 100; ++i) loop.call_at(when, [&order, i] { order.push_back(i); });
  co_await weave::sleep(20ms);
}

Coro<void> random_deadlines_fire_sorted(std::vector<std::pair<std::int64_t, int>>& fired) {
  auto& loop = weave::get_running_loop();
  const auto base = Clock::now() + 2ms;
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  std::vector<weave::TimerHandle> handles;
  for (int i = 0; i < 2000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto when = base + std::chrono::microseconds(x % 20000);
    handles.push_back(loop.call_at(
        when, [&fired, when, i] { fired.emplace_back(when.time_since_epoch().count(), i); }));
  }
  // Every third one is cancelled: it must never run, and the others keep their order.
  for (std::size_t i = 0; i < handles.size(); i += 3) handles[i].cancel();
  co_await weave::sleep(40ms);
}

Coro<void> sleeper_resumes_after_a_later_callback(std::vector<std::string>& log) {
  auto& loop = weave::get_running_loop();
  auto task = weave::create_task(sleep_then_log(5ms, "task", log));
  co_await weave::sleep(0s);  // the task's first step: its timer is armed
  loop.call_later(6ms, [&log] { log.push_back("callback"); });
  // Both deadlines pass while the loop is busy, so both fire in one iteration, the sleep's
  // first. Its callback only queues the task's step for the next iteration, so the plain
  // callback, due later, still runs before the task resumes.
  const auto until = Clock::now() + 8ms;
  while (Clock::now() < until) {
  }
  co_await task;
}

Coro<void> cancelled_sleeper(std::vector<std::string>& log) {
  auto a = weave::create_task(sleep_then_log(5ms, "a", log));
  auto b = weave::create_task(sleep_then_log(10s, "b", log));
  auto c = weave::create_task(sleep_then_log(6ms, "c", log));
  co_await weave::sleep(0s);
  EXPECT_TRUE(b.cancel());
  bool raised = false;
  try {
    co_await b;
  } catch (const weave::CancelledError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  co_await a;
  co_await c;
}

Coro<void> cancel_after_deadline_before_resume(std::vector<std::string>& log) {
  auto t = weave::create_task(sleep_then_log(1ms, "t", log));
  co_await weave::sleep(0s);
  // Block past the deadline without yielding, then let exactly the timer's iteration run: the
  // task is queued to wake but has not resumed yet when it is cancelled.
  const auto until = Clock::now() + 3ms;
  while (Clock::now() < until) {
  }
  co_await weave::sleep(0s);
  EXPECT_TRUE(t.cancel());
  bool raised = false;
  try {
    co_await t;
  } catch (const weave::CancelledError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
}

Coro<int> many_sleepers_all_wake() {
  std::vector<weave::Task<void>> tasks;
  std::vector<std::string> log;
  for (int i = 0; i < 500; ++i) {
    tasks.push_back(weave::create_task(
        sleep_then_log(std::chrono::microseconds((i * 7919) % 3000), std::to_string(i), log)));
  }
  // Cancel every fifth while asleep: the heap loses entries from its middle.
  co_await weave::sleep(0s);
  for (std::size_t i = 0; i < tasks.size(); i += 5) tasks[i].cancel();
  int cancelled = 0;
  for (auto& t : tasks) {
    try {
      co_await t;
    } catch (const weave::CancelledError&) {
      ++cancelled;
    }
  }
  co_return static_cast<int>(log.size()) * 1000 + cancelled;
}

}  // namespace

TEST(TimerOrder, EqualDeadlinesFireInSchedulingOrder) {
  std::vector<int> order;
  run_bounded(equal_deadlines_fire_in_scheduling_order(order));
  ASSERT_EQ(order.size(), 100u);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST(TimerOrder, RandomDeadlinesFireSortedAndCancelledNeverRun) {
  std::vector<std::pair<std::int64_t, int>> fired;
  run_bounded(random_deadlines_fire_sorted(fired));
  EXPECT_EQ(fired.size(), 2000u - 667u);
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end(),
                             [](const auto& a, const auto& b) { return a.first < b.first; }));
  for (const auto& f : fired) EXPECT_NE(f.second % 3, 0);
}

TEST(TimerOrder, SleepingTaskResumesTheIterationAfterItsTimer) {
  std::vector<std::string> log;
  run_bounded(sleeper_resumes_after_a_later_callback(log));
  EXPECT_EQ(log, (std::vector<std::string>{"callback", "task"}));
}

TEST(TimerOrder, CancelWithdrawsOnlyThatSleep) {
  std::vector<std::string> log;
  run_bounded(cancelled_sleeper(log));
  EXPECT_EQ(log, (std::vector<std::string>{"a", "c"}));
}

TEST(TimerOrder, CancelAfterDeadlineBeforeResumeRaisesAtTheSleep) {
  std::vector<std::string> log;
  run_bounded(cancel_after_deadline_before_resume(log));
  EXPECT_TRUE(log.empty());
}

TEST(TimerOrder, ManySleepersWakeAndCancelledOnesDoNot) {
  EXPECT_EQ(run_bounded(many_sleepers_all_wake()), 400 * 1000 + 100);
}

// sleep(0s) is a yield without a frame of its own; it must behave as any Coro<void> does.
namespace {

Coro<std::vector<std::string>> sleep_zero_everywhere() {
  std::vector<std::string> log;
  auto t = weave::create_task(weave::sleep(0s));  // a task needs a frame: one is made
  co_await t;
  log.push_back(t.done() ? "task" : "?");
  co_await weave::gather(weave::sleep(0s), weave::sleep(0s));
  log.push_back("gather");
  co_await weave::timeout(1s, weave::sleep(0s));
  log.push_back("timeout");
  weave::Coro<void> unused = weave::sleep(0s);  // never awaited: nothing to destroy
  weave::Coro<void> moved = std::move(unused);
  co_await std::move(moved);
  log.push_back("moved");
  co_return log;
}

Coro<void> yield_forever(int& yields) {
  for (;;) {
    co_await weave::sleep(0s);
    ++yields;
  }
}

Coro<int> cancel_a_yielding_task() {
  int yields = 0;
  auto t = weave::create_task(yield_forever(yields));
  for (int i = 0; i < 5; ++i) co_await weave::sleep(0s);
  t.cancel();
  try {
    co_await t;
  } catch (const weave::CancelledError&) {
    co_return yields;
  }
  co_return -1;
}

}  // namespace

TEST(SleepZero, WorksAsATaskInGatherInTimeoutAndMoved) {
  EXPECT_EQ(run_bounded(sleep_zero_everywhere()),
            (std::vector<std::string>{"task", "gather", "timeout", "moved"}));
}

TEST(SleepZero, AYieldingTaskIsCancelledAtItsYield) {
  const int yields = run_bounded(cancel_a_yielding_task());
  EXPECT_GE(yields, 3);
  EXPECT_LE(yields, 5);
}

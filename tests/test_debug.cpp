// Debug mode's reports, each naming its task: the slow step, a pending task destroyed, an unclosed
// loop, an exception never retrieved, a loop about to block forever; and the stall watchdog,
// which reports a step while it still blocks, rate-limited.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/bounded.hpp"
#include "support/reports.hpp"
#include "weave/trace.hpp"
#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;
using weave_test::Reports;
using weave_test::run_bounded;

/// Spins at least `d`, then until the watchdog has counted this stall (reported or suppressed),
/// for at most 5 s: on a loaded machine its thread may not run within `d`, and a stall it never
/// saw would make the counts below wrong.
void stall_until_counted(std::chrono::milliseconds d) {
  const weave::StallCounts before = weave::stall_counts();
  const auto give_up = std::chrono::steady_clock::now() + d + 5s;
  auto counted = [&] {
    const weave::StallCounts now = weave::stall_counts();
    return now.reported + now.suppressed > before.reported + before.suppressed;
  };
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end ||
         (!counted() && std::chrono::steady_clock::now() < give_up)) {
  }
}

void spin_for(std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

/// The loop's reports, kept apart from the loop's lifetime (some come from its destructor).
struct Collected {
  std::shared_ptr<std::vector<std::string>> messages = std::make_shared<std::vector<std::string>>();
  void install(weave::EventLoop& loop) {
    loop.set_exception_handler([m = messages](weave::EventLoop&, const weave::ExceptionContext& c) {
      std::string s = c.message;
      if (c.task) s += " [task=" + c.task->get_name() + "]";
      m->push_back(s);
    });
  }
  bool contains(const std::string& text) const {
    for (const std::string& m : *messages) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }
};

TEST(DebugMode, SlowStepNamesTheTask) {
  weave::EventLoop loop;
  loop.set_debug(true);
  loop.slow_callback_duration = 20ms;
  Collected c;
  c.install(loop);
  weave::set_stall_reporter([](const weave::StallReport&) {});
  auto slow = []() -> weave::Coro<void> {
    spin_for(40ms);
    co_return;
  };
  auto fast = []() -> weave::Coro<void> { co_return; };
  loop.run_until_complete(loop.create_task(fast(), "quick"));
  loop.run_until_complete(loop.create_task(slow(), "slowpoke"));
  loop.close();
  weave::set_stall_reporter(nullptr);
  ASSERT_EQ(c.messages->size(), 1u) << (c.messages->empty() ? "" : c.messages->front());
  EXPECT_TRUE(c.contains("Executing <Task name='slowpoke'> took 0.0")) << c.messages->front();
  EXPECT_TRUE(c.contains("[task=slowpoke]"));
}

TEST(DebugMode, OffMakesNoSlowReport) {
  weave::EventLoop loop;
  loop.slow_callback_duration = 5ms;
  Collected c;
  c.install(loop);
  auto slow = []() -> weave::Coro<void> {
    spin_for(15ms);
    co_return;
  };
  loop.run_until_complete(loop.create_task(slow(), "slowpoke"));
  loop.close();
  EXPECT_TRUE(c.messages->empty());
}

TEST(DebugMode, PendingTaskDestroyedAndUnclosedLoop) {
  Collected c;
  int forgotten_line = 0;
  int sleeper_line = 0;
  {
    weave::EventLoop loop;
    loop.set_debug(true);
    c.install(loop);
    weave::Future<int> never = loop.create_future<int>();
    auto waiter = [](weave::Future<int> f) -> weave::Coro<void> { (void)co_await f; };
    auto t = loop.create_task(waiter(never), "forgotten");
    forgotten_line = __LINE__ - 1;
    auto sleeper = [](int& line) -> weave::Coro<void> {
      line = __LINE__ + 1;
      co_await weave::sleep(1h);
    };
    auto s = loop.create_task(sleeper(sleeper_line), "sleeper");
    loop.run_until_complete(weave::sleep(1ms));
    // Destroyed without close(): a report for the loop, one for each task.
  }
  ASSERT_EQ(c.messages->size(), 3u);
  EXPECT_EQ((*c.messages)[0].rfind("unclosed event loop <EventLoop ", 0), 0u) << (*c.messages)[0];
  EXPECT_TRUE(c.contains("Task was destroyed but it is pending! <Task name='forgotten'>"));
  EXPECT_TRUE(c.contains("Task 'forgotten' (id ")) << (*c.messages)[1];
  EXPECT_TRUE(c.contains("awaits a future\nTask created at File '" + std::string(__FILE__) +
                         "', line " + std::to_string(forgotten_line)))
      << (*c.messages)[1];
  EXPECT_FALSE(c.contains("(a cycle)"));
  // A weave wait names its line, and the task where it was created.
  EXPECT_TRUE(c.contains("Task 'sleeper' (id "));
  EXPECT_TRUE(c.contains("awaits a timer (sleep) at File '" + std::string(__FILE__) + "', line " +
                         std::to_string(sleeper_line)))
      << (*c.messages)[2];
}

TEST(DebugMode, PendingAwaitCycleIsReportedOnce) {
  Collected c;
  {
    weave::EventLoop loop;
    loop.set_debug(true);
    c.install(loop);
    std::optional<weave::Task<void>> b;
    auto awaits_b = [](std::optional<weave::Task<void>>& other) -> weave::Coro<void> {
      co_await weave::sleep(0s);  // b exists by now
      co_await *other;
    };
    auto awaits = [](weave::Task<void> other) -> weave::Coro<void> { co_await other; };
    auto a = loop.create_task(awaits_b(b), "a");
    b = loop.create_task(awaits(a), "b");
    loop.run_until_complete(weave::sleep(1ms));
    loop.close();
  }
  ASSERT_EQ(c.messages->size(), 2u);
  for (const std::string& m : *c.messages) {
    EXPECT_NE(m.find("Task 'a' (id "), std::string::npos) << m;
    EXPECT_NE(m.find("Task 'b' (id "), std::string::npos) << m;
    EXPECT_NE(m.find("\n  (a cycle)\nTask created at File '"), std::string::npos) << m;
  }
}

weave::Coro<int> never_awaited_body() {
  co_return 1;
}

TEST(DebugMode, CoroutineNeverAwaitedNamesItsFunction) {
  weave::EventLoop loop;
  loop.set_debug(true);
  Collected c;
  c.install(loop);
  auto body = []() -> weave::Coro<void> {
    { auto forgotten = never_awaited_body(); }  // made, then dropped
    co_await never_awaited_body();              // awaited: no report
    auto t = weave::create_task(never_awaited_body());
    co_await t;  // made a task: no report
  };
  loop.run_until_complete(loop.create_task(body(), "dropper"));
  // Outside debug mode: no report.
  loop.set_debug(false);
  loop.run_until_complete(loop.create_task(body(), "quiet"));
  loop.close();
  ASSERT_EQ(c.messages->size(), 1u);
  EXPECT_EQ(c.messages->front(),
            "coroutine '(anonymous namespace)::never_awaited_body()' was never awaited "
            "[task=dropper]");
}

TEST(DebugMode, ClosedLoopWithoutPendingTasksIsQuiet) {
  Collected c;
  {
    weave::EventLoop loop;
    loop.set_debug(true);
    c.install(loop);
    loop.run_until_complete(weave::sleep(1ms));
    loop.close();
  }
  EXPECT_TRUE(c.messages->empty());
}

TEST(DebugMode, ExceptionNeverRetrievedNamesTheTask) {
  weave::EventLoop loop;
  loop.set_debug(true);
  Collected c;
  c.install(loop);
  auto boom = []() -> weave::Coro<void> {
    throw std::runtime_error("boom");
    co_return;
  };
  int line = 0;
  {
    auto t = loop.create_task(boom(), "exploder");
    line = __LINE__ - 1;
    loop.run_until_complete(weave::sleep(1ms));
  }
  loop.close();
  ASSERT_EQ(c.messages->size(), 1u);
  EXPECT_TRUE(c.contains("Task exception was never retrieved (exploder)\nTask created at File '" +
                         std::string(__FILE__) + "', line " + std::to_string(line) +
                         " [task=exploder]"))
      << c.messages->front();
}

TEST(DebugMode, WarnsBeforeBlockingForeverWithEveryChain) {
  weave::EventLoop loop;
  loop.set_debug(true);
  Collected c;
  c.install(loop);
  weave::Future<int> never = loop.create_future<int>();
  auto waiter = [](weave::Future<int> f) -> weave::Coro<int> { co_return co_await f; };
  auto inner = loop.create_task(waiter(never), "inner");
  auto outer_fn = [](weave::Task<int> t) -> weave::Coro<int> { co_return co_await t; };
  auto outer = loop.create_task(outer_fn(inner), "outer");
  // Wakes the loop from outside once it blocks: the warning must come before.
  // By reference: a Future's handle count is the loop thread's, so no copy is made or dropped
  // on the rescuer's thread.
  std::thread rescuer([&loop, &never] {
    std::this_thread::sleep_for(300ms);
    loop.call_soon_threadsafe([&never] { never.set_result(7); });
  });
  EXPECT_EQ(loop.run_until_complete(outer), 7);
  rescuer.join();
  loop.close();
  ASSERT_EQ(c.messages->size(), 1u);
  const std::string& m = c.messages->front();
  EXPECT_NE(m.find("about to block forever"), std::string::npos) << m;
  EXPECT_NE(m.find("2 waiting task(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("Task 'outer' (id "), std::string::npos) << m;
  EXPECT_NE(m.find("Task 'inner' (id "), std::string::npos) << m;
}

TEST(DebugMode, NoBlockForeverWarningWhileATimerIsPending) {
  weave::EventLoop loop;
  loop.set_debug(true);
  Collected c;
  c.install(loop);
  loop.run_until_complete(weave::sleep(30ms));
  loop.close();
  EXPECT_TRUE(c.messages->empty());
}

struct StallLog {
  std::mutex m;
  std::vector<weave::StallReport> reports;
  std::vector<weave::Clock::time_point> at;
};

TEST(Watchdog, SleepSystemCallReportedWhileItBlocks) {
  weave::EventLoop loop;
  loop.set_debug(true);
  loop.slow_callback_duration = 100ms;
  Collected c;
  c.install(loop);
  weave::set_stall_rate_limit(10, 60s);
  auto log = std::make_shared<StallLog>();
  weave::set_stall_reporter([log](const weave::StallReport& r) {
    std::lock_guard lock(log->m);
    log->reports.push_back(r);
    log->at.push_back(weave::Clock::now());
  });
  weave::Clock::time_point began;
  auto sleeper = [&began]() -> weave::Coro<void> {
    began = weave::Clock::now();
    ::sleep(1);  // a blocking system call in a step (the watchdog's signal may cut it short)
    co_return;
  };
  loop.run_until_complete(loop.create_task(sleeper(), "sleeper"));
  loop.close();
  weave::set_stall_reporter(nullptr);
  std::lock_guard lock(log->m);
  ASSERT_EQ(log->reports.size(), 1u);
  const weave::StallReport& r = log->reports[0];
  EXPECT_EQ(r.task, "Task 'sleeper'");
  EXPECT_NE(r.await_chain.find("Task 'sleeper' (id "), std::string::npos);
  EXPECT_GE(r.wall, 100ms);
  EXPECT_LT(log->at[0] - began, 900ms);  // while it still blocked: the sleep lasts 1 s
  EXPECT_LT(r.cpu, 50ms);                // asleep, not spinning
  EXPECT_FALSE(r.backtrace.empty());
  EXPECT_NE(r.text.find("weave: stall: Task 'sleeper' has blocked its loop for 0."),
            std::string::npos)
      << r.text;
  EXPECT_NE(r.text.find("loop thread backtrace:"), std::string::npos);
  // And the slow step's report when it ended.
  EXPECT_TRUE(c.contains("Executing <Task name='sleeper'> took"));
}

TEST(Watchdog, HundredStallsInAMinuteAreRateLimited) {
  weave::EventLoop loop;
  loop.set_debug(true);
  loop.slow_callback_duration = 5ms;
  loop.set_exception_handler([](weave::EventLoop&, const weave::ExceptionContext&) {});
  weave::set_stall_rate_limit(10, 60s);
  auto log = std::make_shared<StallLog>();
  weave::set_stall_reporter([log](const weave::StallReport& r) {
    std::lock_guard lock(log->m);
    log->reports.push_back(r);
  });
  const weave::StallCounts before = weave::stall_counts();
  auto stalls = []() -> weave::Coro<void> {
    for (int i = 0; i < 100; ++i) {
      stall_until_counted(20ms);
      co_await weave::sleep(0s);
    }
  };
  loop.run_until_complete(loop.create_task(stalls(), "staller"));
  const weave::StallCounts after = weave::stall_counts();
  EXPECT_EQ(after.reported - before.reported, 10u);
  EXPECT_EQ(after.suppressed - before.suppressed, 90u);
  {
    std::lock_guard lock(log->m);
    ASSERT_EQ(log->reports.size(), 10u);
    for (const auto& r : log->reports) {
      EXPECT_EQ(r.task, "Task 'staller'");
      EXPECT_GT(r.cpu,
                0ns);  // spinning: the loop thread's CPU clock ran (how much depends on the load)
      EXPECT_EQ(r.suppressed, 0u);
    }
  }
  loop.close();
  weave::set_stall_reporter(nullptr);
}

TEST(Watchdog, TheNextReportCountsTheSuppressedOnes) {
  weave::EventLoop loop;
  loop.set_debug(true);
  loop.slow_callback_duration = 5ms;
  loop.set_exception_handler([](weave::EventLoop&, const weave::ExceptionContext&) {});
  weave::set_stall_rate_limit(3, 400ms);
  auto log = std::make_shared<StallLog>();
  weave::set_stall_reporter([log](const weave::StallReport& r) {
    std::lock_guard lock(log->m);
    log->reports.push_back(r);
  });
  auto stalls = []() -> weave::Coro<void> {
    for (int i = 0; i < 8; ++i) {
      stall_until_counted(20ms);
      co_await weave::sleep(0s);
    }
    co_await weave::sleep(500ms);  // the window passes
    stall_until_counted(20ms);
  };
  loop.run_until_complete(loop.create_task(stalls(), "staller"));
  loop.close();
  weave::set_stall_reporter(nullptr);
  weave::set_stall_rate_limit(10, 60s);
  std::lock_guard lock(log->m);
  ASSERT_EQ(log->reports.size(), 4u);
  EXPECT_EQ(log->reports[3].suppressed, 5u);
  EXPECT_NE(log->reports[3].text.find("(5 stall(s) not reported before this one)"),
            std::string::npos);
}

}  // namespace

// A task's rarely used state (its name, a cancel message) lives outside the task (future.cpp's
// table): it must read back as asyncio's does, after the task finished and after its loop closed,
// and leave with the last handle.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/bounded.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave_test::run_bounded;

namespace {

Coro<void> nap() {
  co_await weave::sleep(1ms);
}

Coro<void> forever() {
  co_await weave::sleep(1h);
}

Coro<std::vector<std::string>> named_tasks() {
  auto a = weave::create_task(nap(), "alpha");
  auto b = weave::create_task(nap());
  std::vector<std::string> seen;
  seen.push_back(a.get_name());
  seen.push_back(b.get_name().rfind("Task-", 0) == 0 ? "default" : b.get_name());
  b.set_name("beta");
  co_await a;
  co_await b;
  seen.push_back(a.get_name());
  seen.push_back(b.get_name());
  co_return seen;
}

Coro<std::string> cancel_message() {
  auto t = weave::create_task(forever());
  co_await weave::sleep(0s);
  t.cancel("stop now");
  try {
    co_await t;
  } catch (const weave::CancelledError& e) {
    co_return e.message();
  }
  co_return "not cancelled";
}

Coro<weave::Task<void>> escape_named() {
  auto t = weave::create_task(nap(), "outlives its loop");
  co_await t;
  co_return t;
}

Coro<int> many_named() {
  std::vector<weave::Task<void>> tasks;
  for (int i = 0; i < 1000; ++i) tasks.push_back(weave::create_task(nap(), std::to_string(i)));
  int right = 0;
  for (int i = 0; i < 1000; ++i) {
    co_await tasks[static_cast<std::size_t>(i)];
    if (tasks[static_cast<std::size_t>(i)].get_name() == std::to_string(i)) ++right;
  }
  co_return right;
}

}  // namespace

TEST(TaskExtras, NamesReadBackBeforeAndAfterTheTaskFinished) {
  EXPECT_EQ(run_bounded(named_tasks()),
            (std::vector<std::string>{"alpha", "default", "alpha", "beta"}));
}

TEST(TaskExtras, CancelMessageReachesTheAwaiter) {
  EXPECT_EQ(run_bounded(cancel_message()), "stop now");
}

TEST(TaskExtras, NameStaysReadableAfterTheLoopClosed) {
  weave::Task<void> t = run_bounded(escape_named());
  EXPECT_EQ(t.get_name(), "outlives its loop");
}

TEST(TaskExtras, EachTaskKeepsItsOwnName) {
  EXPECT_EQ(run_bounded(many_named()), 1000);
}

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {
std::vector<std::string> lines;
weave::Coro<void> foo() {
  lines.push_back("Running in foo");
  co_await weave::sleep(0s);
  lines.push_back("Explicit context switch to foo again");
}
weave::Coro<int> add(int a, int b) {
  co_await weave::sleep(1ms);
  co_return a + b;
}
}  // namespace

TEST(Smoke, RunsACoroutine) {
  int r = weave::run([]() -> weave::Coro<int> {
    int x = co_await add(1, 2);
    auto t = weave::create_task(add(x, 10));
    co_await foo();
    co_return co_await t;
  }());
  EXPECT_EQ(r, 13);
  EXPECT_EQ(lines.size(), 2u);
}

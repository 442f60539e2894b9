// asyncio.timeout()'s Timeout object (when, reschedule, expired), timeouts that never fire
// (nullopt), wait_for(aw, nullopt), and sleep(delay, result).

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "support/bounded.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave_test::run_bounded;

namespace {

TEST(TimeoutObject, ExpiresAsTimeoutErrorAndSaysSo) {
  run_bounded([]() -> Coro<void> {
    weave::Timeout* seen = nullptr;
    bool expired_inside = false;
    bool timed_out = false;
    try {
      auto body = [&](weave::Timeout& cm) -> Coro<void> {
        seen = &cm;
        EXPECT_TRUE(cm.when().has_value());
        try {
          co_await weave::sleep(10s);
        } catch (const weave::CancelledError&) {
          expired_inside = cm.expired();
          throw;
        }
      };
      co_await weave::timeout(5ms, body);
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(seen != nullptr);
    EXPECT_TRUE(expired_inside);
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(weave::current_task()->cancelling(), 0);
  }());
}

TEST(TimeoutObject, RescheduleMovesTheDeadlineBothWays) {
  run_bounded([]() -> Coro<void> {
    auto later = [](weave::Timeout& cm) -> Coro<int> {
      cm.reschedule(weave::get_running_loop().time() + 10s);
      co_await weave::sleep(20ms);  // past the first deadline, before the new one
      EXPECT_FALSE(cm.expired());
      co_return 7;
    };
    int got = co_await weave::timeout(5ms, later);
    EXPECT_EQ(got, 7);
    auto sooner = [](weave::Timeout& cm) -> Coro<void> {
      EXPECT_EQ(cm.when(), std::nullopt);
      cm.reschedule(weave::get_running_loop().time() + 5ms);
      co_await weave::sleep(10s);
    };
    bool timed_out = false;
    auto t0 = weave::Clock::now();
    try {
      co_await weave::timeout(std::nullopt, sooner);
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_LT(weave::Clock::now() - t0, 5s);
  }());
}

TEST(TimeoutObject, NulloptNeverFiresAndRescheduleAfterExpiryIsRuntimeError) {
  run_bounded([]() -> Coro<void> {
    auto never = [](weave::Timeout& cm) -> Coro<std::string> {
      co_await weave::sleep(20ms);
      EXPECT_FALSE(cm.expired());
      cm.reschedule(std::nullopt);
      co_return "done";
    };
    std::string got = co_await weave::timeout_at(std::nullopt, never);
    EXPECT_EQ(got, "done");
    bool refused = false;
    auto expire = [&](weave::Timeout& cm) -> Coro<void> {
      try {
        co_await weave::sleep(10s);
      } catch (const weave::CancelledError&) {
        try {
          cm.reschedule(std::nullopt);
        } catch (const weave::RuntimeError&) {
          refused = true;
        }
        throw;
      }
    };
    bool timed_out = false;
    try {
      co_await weave::timeout_at(weave::get_running_loop().time() - 1s, expire);
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_TRUE(timed_out);
  }());
}

TEST(TimeoutObject, OutsideCancellationStaysCancelledError) {
  run_bounded([]() -> Coro<void> {
    auto inner = weave::create_task([]() -> Coro<void> {
      auto body = [](weave::Timeout&) -> Coro<void> { co_await weave::sleep(10s); };
      co_await weave::timeout(10s, body);
    }());
    co_await weave::sleep(0s);
    inner.cancel();
    bool cancelled = false;
    try {
      co_await inner;
    } catch (const weave::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
  }());
}

TEST(WaitForNullopt, WaitsWithoutADeadline) {
  run_bounded([]() -> Coro<void> {
    int got = co_await weave::wait_for(weave::sleep(20ms, 5), std::nullopt);
    EXPECT_EQ(got, 5);
    co_await weave::wait_for(weave::sleep(1ms), std::nullopt);
  }());
}

TEST(SleepResult, ReturnsTheResultAfterTheDelay) {
  run_bounded([]() -> Coro<void> {
    auto t0 = weave::Clock::now();
    std::string got = co_await weave::sleep(10ms, std::string("late"));
    EXPECT_EQ(got, "late");
    EXPECT_GE(weave::Clock::now() - t0, 10ms);
  }());
}

}  // namespace

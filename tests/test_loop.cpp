// asyncio's event loop behaviour: call_soon FIFO and the one-iteration rule, timers ordered by
// (deadline, insertion), Handle/TimerHandle cancel, run_until_complete, run_forever + stop (stop
// finishes the current iteration), close and the RuntimeErrors of a closed or running loop, the
// exception handler, the debug flag, and that an idle loop blocks in its backend until the next
// timer instead of spinning.

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/bounded.hpp"
#include "support/reports.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Clock;
using weave::Coro;
using weave::EventLoop;
using weave_test::Reports;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

using weave_test::value_after;
using weave_test::yield;

Coro<int> fail_now() {
  throw std::runtime_error("main failed");
  co_return 0;
}

/// A safety net for tests that drive a loop by hand: stops it after `limit`.
weave::TimerHandle watchdog(EventLoop& loop, bool& fired, std::chrono::milliseconds limit = 5s) {
  return loop.call_later(weave_test::scaled(limit), [&loop, &fired] {
    fired = true;
    loop.stop();
  });
}

}  // namespace

// ---- call_soon --------------------------------------------------------------------------------

TEST(EventLoop, CallSoonRunsCallbacksFifoAndLaterOnesInTheNextIteration) {
  EventLoop loop;
  Trace trace;
  loop.call_soon([&] {
    trace("a");
    loop.call_soon([&] {
      trace("d");
      loop.stop();
    });
  });
  loop.call_soon([&] { trace("b"); });
  loop.call_soon([&] { trace("c"); });
  bool fired = false;
  auto dog = watchdog(loop, fired);
  loop.run_forever();
  dog.cancel();
  EXPECT_FALSE(fired);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a", "b", "c", "d"}));
  loop.close();
}

TEST(EventLoop, StopFinishesTheCurrentIterationOnly) {
  EventLoop loop;
  Trace trace;
  loop.call_soon([&] {
    trace("a");
    loop.stop();
    loop.call_soon([&] { trace("next iteration"); });
  });
  loop.call_soon([&] { trace("b"); });  // same batch as the stop: still runs
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(loop.is_running());
  // What was scheduled stays scheduled and runs in the next run.
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a", "b", "next iteration"}));
  loop.close();
}

TEST(EventLoop, StopBeforeRunForeverRunsOneIteration) {
  EventLoop loop;
  Trace trace;
  loop.call_soon([&] {
    trace("first");
    loop.call_soon([&] { trace("second"); });
  });
  loop.stop();
  loop.run_forever();  // asyncio: one iteration, then it stops
  EXPECT_EQ(trace.events, (std::vector<std::string>{"first"}));
  loop.stop();
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"first", "second"}));
  loop.close();
}

TEST(EventLoop, ACancelledHandleNeverRuns) {
  EventLoop loop;
  Trace trace;
  weave::Handle h = loop.call_soon([&] { trace("cancelled"); });
  loop.call_soon([&] { trace("kept"); });
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  h.cancel();  // idempotent
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"kept"}));
  loop.close();
}

TEST(EventLoop, CancellingAHandleThatAlreadyRanHasNoEffectOnOthers) {
  EventLoop loop;
  int runs = 0;
  weave::Handle h = loop.call_soon([&] { ++runs; });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(runs, 1);
  // The node went back to the pool; a later callback may reuse it and must not be cancelled.
  weave::Handle other = loop.call_soon([&] { ++runs; });
  h.cancel();
  EXPECT_FALSE(other.cancelled());
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(runs, 2);
  loop.close();
}

TEST(EventLoop, ACallbackCancellingALaterOneInTheSameBatchPreventsIt) {
  EventLoop loop;
  Trace trace;
  weave::Handle second;
  loop.call_soon([&] {
    trace("first");
    second.cancel();
  });
  second = loop.call_soon([&] { trace("second"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"first"}));
  loop.close();
}

TEST(EventLoop, AHandleCancelledByItsOwnCallbackKeepsTheCallbackAliveUntilItReturns) {
  EventLoop loop;
  std::string seen;
  weave::Handle soon;
  soon = loop.call_soon([&soon, &seen, text = std::string(64, 's')] {
    soon.cancel();
    seen = text;  // the callback's captures are still alive
  });
  weave::TimerHandle later;
  later = loop.call_later(1ms, [&later, &seen, &loop, text = std::string(64, 't')] {
    later.cancel();
    seen += text;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(seen, std::string(64, 's') + std::string(64, 't'));
  EXPECT_TRUE(soon.cancelled());
  EXPECT_TRUE(later.cancelled());
  loop.close();
}

// ---- timers -----------------------------------------------------------------------------------

TEST(EventLoop, TimersFireByDeadlineThenInsertionOrder) {
  EventLoop loop;
  Trace trace;
  const Clock::time_point base = loop.time() + 20ms;
  loop.call_at(base + 20ms, [&] {
    trace("late");
    loop.stop();
  });
  loop.call_at(base, [&] { trace("tie 1"); });
  loop.call_at(base, [&] { trace("tie 2"); });
  loop.call_at(base - 10ms, [&] { trace("early"); });
  loop.call_at(base, [&] { trace("tie 3"); });
  loop.call_later(0s, [&] { trace("now"); });
  bool fired = false;
  auto dog = watchdog(loop, fired);
  loop.run_forever();
  dog.cancel();
  EXPECT_FALSE(fired);
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"now", "early", "tie 1", "tie 2", "tie 3", "late"}));
  loop.close();
}

TEST(EventLoop, DueTimersRunAfterTheCallbacksAlreadyReady) {
  EventLoop loop;
  Trace trace;
  loop.call_later(-1s, [&] { trace("timer"); });  // negative delay: due at once
  loop.call_soon([&] { trace("soon"); });
  loop.call_later(1ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"soon", "timer"}));
  loop.close();
}

TEST(EventLoop, ACancelledTimerNeverFiresAndKeepsItsWhen) {
  EventLoop loop;
  Trace trace;
  const Clock::time_point when = loop.time() + 5ms;
  weave::TimerHandle t = loop.call_at(when, [&] { trace("cancelled"); });
  EXPECT_EQ(t.when(), when);
  loop.call_at(when, [&] { trace("kept"); });
  t.cancel();
  EXPECT_TRUE(t.cancelled());
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"kept"}));
  loop.close();
}

TEST(EventLoop, ATimerCancellingAnotherDueInTheSameIterationPreventsIt) {
  EventLoop loop;
  Trace trace;
  const Clock::time_point when = loop.time() + 2ms;
  weave::TimerHandle second;
  loop.call_at(when, [&] {
    trace("first");
    second.cancel();
  });
  second = loop.call_at(when, [&] { trace("second"); });
  loop.call_at(when + 5ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"first"}));
  loop.close();
}

TEST(EventLoop, TimeIsMonotonic) {
  EventLoop loop;
  Clock::time_point last = loop.time();
  for (int i = 0; i < 1000; ++i) {
    Clock::time_point now = loop.time();
    EXPECT_GE(now, last);
    last = now;
  }
}

TEST(EventLoop, ATimerFiresAfterItsDelayNotEarly) {
  EventLoop loop;
  const Clock::time_point start = loop.time();
  Clock::time_point fired_at{};
  loop.call_later(50ms, [&] {
    fired_at = loop.time();
    loop.stop();
  });
  bool fired = false;
  auto dog = watchdog(loop, fired);
  loop.run_forever();
  dog.cancel();
  EXPECT_FALSE(fired);
  const auto took = fired_at - start;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, weave_test::scaled(1000ms));  // generous: the machine may be busy
  loop.close();
}

TEST(EventLoop, AnIdleLoopBlocksInItsBackendUntilTheNextTimer) {
  EventLoop loop;
  const std::clock_t cpu_start = std::clock();
  const Clock::time_point start = loop.time();
  loop.call_later(200ms, [&] { loop.stop(); });
  loop.run_forever();
  const double wall = std::chrono::duration<double>(loop.time() - start).count();
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  EXPECT_GE(wall, 0.2);
  EXPECT_LT(cpu, wall / 2) << "the loop spun instead of blocking in the backend";
  loop.close();
}

// ---- run_until_complete / run_forever -----------------------------------------------------------

TEST(EventLoop, RunUntilCompleteReturnsTheResultOfACoroTaskOrFuture) {
  EventLoop loop;
  EXPECT_EQ(loop.run_until_complete(value_after(3, 2)), 3);
  auto task = loop.create_task(value_after(4, 1));
  EXPECT_EQ(loop.run_until_complete(task), 4);
  auto fut = loop.create_future<int>();
  loop.call_later(1ms, [fut]() mutable { fut.set_result(5); });
  EXPECT_EQ(loop.run_until_complete(fut), 5);
  EXPECT_FALSE(loop.is_running());
  loop.close();
}

TEST(EventLoop, RunUntilCompleteRaisesTheException) {
  EventLoop loop;
  EXPECT_THROW(loop.run_until_complete(fail_now()), std::runtime_error);
  auto fut = loop.create_future<int>();
  loop.call_soon([fut]() mutable { fut.cancel("no"); });
  EXPECT_THROW(loop.run_until_complete(fut), weave::CancelledError);
  loop.close();
}

TEST(EventLoop, RunUntilCompleteLeavesOtherWorkForTheNextRun) {
  EventLoop loop;
  Trace trace;
  loop.call_later(30ms, [&] { trace("timer"); });
  EXPECT_EQ(loop.run_until_complete(value_after(1, 1)), 1);
  EXPECT_TRUE(trace.events.empty());
  loop.run_until_complete(weave::sleep(60ms));
  EXPECT_EQ(trace.events, (std::vector<std::string>{"timer"}));
  loop.close();
}

TEST(EventLoop, RunUntilCompleteOfAnotherLoopsFutureRaisesValueError) {
  EventLoop loop;
  EventLoop other;
  auto fut = other.create_future<int>();
  EXPECT_THROW((void)loop.run_until_complete(fut), weave::ValueError);
  auto task = other.create_task(value_after(1, 0));
  EXPECT_THROW((void)loop.run_until_complete(task), weave::ValueError);
  EXPECT_EQ(other.run_until_complete(task), 1);
  fut.cancel();
  loop.close();
  other.close();
}

TEST(EventLoop, IsRunningAndGetRunningLoopInsideTheLoop) {
  EventLoop loop;
  EXPECT_FALSE(loop.is_running());
  EXPECT_THROW((void)weave::get_running_loop(), weave::RuntimeError);
  bool running = false;
  EventLoop* seen = nullptr;
  loop.call_soon([&] {
    running = loop.is_running();
    seen = &weave::get_running_loop();
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(running);
  EXPECT_EQ(seen, &loop);
  EXPECT_THROW((void)weave::get_running_loop(), weave::RuntimeError);
  loop.close();
}

Coro<void> nested_run(EventLoop* other, bool* side_effect) {
  EventLoop& loop = weave::get_running_loop();
  EXPECT_THROW(loop.run_forever(), weave::RuntimeError);
  EXPECT_THROW(other->run_forever(), weave::RuntimeError);
  auto f = loop.create_future<int>();
  EXPECT_THROW(loop.run_until_complete(f), weave::RuntimeError);
  auto touch = [](bool* flag) -> Coro<int> {
    *flag = true;
    co_return 1;
  };
  // asyncio checks that the loop can run before it wraps the coroutine in a task: nothing of it
  // is left scheduled.
  EXPECT_THROW(loop.run_until_complete(touch(side_effect)), weave::RuntimeError);
  EXPECT_THROW(other->run_until_complete(touch(side_effect)), weave::RuntimeError);
  EXPECT_THROW((void)weave::run(value_after(1, 0)), weave::RuntimeError);
  co_await yield(2);
  f.cancel();
}
TEST(EventLoop, RunningALoopInsideARunningLoopRaisesRuntimeError) {
  EventLoop other;
  bool side_effect = false;
  run_bounded(nested_run(&other, &side_effect));
  EXPECT_FALSE(side_effect);
  other.close();
}

// ---- close ------------------------------------------------------------------------------------

TEST(EventLoop, AClosedLoopRaisesRuntimeErrorOnUse) {
  EventLoop loop;
  EXPECT_FALSE(loop.is_closed());
  loop.close();
  EXPECT_TRUE(loop.is_closed());
  loop.close();  // closing twice is allowed
  EXPECT_THROW(loop.call_soon([] {}), weave::RuntimeError);
  EXPECT_THROW(loop.call_later(1s, [] {}), weave::RuntimeError);
  EXPECT_THROW(loop.call_at(loop.time(), [] {}), weave::RuntimeError);
  EXPECT_THROW(loop.call_soon_threadsafe([] {}), weave::RuntimeError);
  EXPECT_THROW(loop.run_forever(), weave::RuntimeError);
  EXPECT_THROW((void)loop.create_task(value_after(1, 0)), weave::RuntimeError);
  EXPECT_THROW((void)loop.run_until_complete(value_after(1, 0)), weave::RuntimeError);
}

TEST(EventLoop, CloseWhileRunningRaisesRuntimeError) {
  EventLoop loop;
  bool raised = false;
  loop.call_soon([&] {
    try {
      loop.close();
    } catch (const weave::RuntimeError&) {
      raised = true;
    }
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(raised);
  EXPECT_FALSE(loop.is_closed());
  loop.close();
}

TEST(EventLoop, CloseDropsPendingCallbacks) {
  EventLoop loop;
  bool ran = false;
  loop.call_soon([&] { ran = true; });
  loop.call_later(1ms, [&] { ran = true; });
  loop.close();
  EXPECT_FALSE(ran);
}

Coro<void> sleep_forever() {
  co_await weave::sleep(1h);
}
Coro<void> await_task(weave::Task<void> other) {
  co_await other;
}
Coro<void> gather_pair(weave::Task<void> a, weave::Task<void> b) {
  co_await weave::gather(a, b);
}

TEST(EventLoop, DestroyingALoopFreesItsPendingTasksInAnyOrder) {
  // Tasks waiting on timers, on each other and in a gather, some with handles kept past the loop:
  // nothing may touch freed memory while the loop tears them down (asan watches).
  weave::Task<void> kept;
  {
    EventLoop loop;
    auto a = loop.create_task(sleep_forever());
    auto b = loop.create_task(await_task(a));
    kept = loop.create_task(await_task(b));
    (void)loop.create_task(gather_pair(a, b));
    (void)loop.create_task(await_task(loop.create_task(sleep_forever())));
    loop.run_until_complete(weave::sleep(1ms));
    loop.close();
  }
  EXPECT_FALSE(kept.done());
}

// ---- exception handler and debug --------------------------------------------------------------

TEST(EventLoop, CallExceptionHandlerUsesTheInstalledHandler) {
  EventLoop loop;
  EXPECT_FALSE(static_cast<bool>(loop.get_exception_handler()));
  std::vector<std::string> seen;
  loop.set_exception_handler([&](EventLoop& l, const weave::ExceptionContext& ctx) {
    EXPECT_EQ(&l, &loop);
    seen.push_back(ctx.message);
  });
  EXPECT_TRUE(static_cast<bool>(loop.get_exception_handler()));
  loop.call_exception_handler({"something happened", nullptr, std::nullopt});
  EXPECT_EQ(seen, (std::vector<std::string>{"something happened"}));
  loop.set_exception_handler(nullptr);
  EXPECT_FALSE(static_cast<bool>(loop.get_exception_handler()));
  testing::internal::CaptureStderr();
  loop.call_exception_handler({"to stderr", nullptr, std::nullopt});
  EXPECT_NE(testing::internal::GetCapturedStderr().find("to stderr"), std::string::npos);
  loop.close();
}

TEST(EventLoop, AFailingHandlerFallsBackToTheDefaultHandler) {
  EventLoop loop;
  loop.set_exception_handler(
      [](EventLoop&, const weave::ExceptionContext&) { throw std::runtime_error("handler bug"); });
  testing::internal::CaptureStderr();
  loop.call_exception_handler(
      {"original report", std::make_exception_ptr(std::runtime_error("cause")), std::nullopt});
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("original report"), std::string::npos);
  EXPECT_NE(err.find("cause"), std::string::npos);
  loop.close();
}

TEST(EventLoop, ACallbackExceptionIsReportedAndTheLoopGoesOn) {
  EventLoop loop;
  Reports reports;
  reports.install(&loop);
  bool after = false;
  loop.call_soon([] { throw std::runtime_error("bad callback"); });
  loop.call_soon([&] {
    after = true;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(after);
  EXPECT_EQ(reports.messages.size(), 1u);
  EXPECT_TRUE(reports.contains("Exception in callback"));
  if (!reports.exceptions.empty()) {
    EXPECT_THROW(std::rethrow_exception(reports.exceptions[0]), std::runtime_error);
  }
  loop.close();
}

TEST(EventLoop, DebugFlag) {
  EventLoop loop;
  loop.set_debug(true);
  EXPECT_TRUE(loop.get_debug());
  loop.set_debug(false);
  EXPECT_FALSE(loop.get_debug());
  EXPECT_GT(loop.slow_callback_duration, Clock::duration::zero());
  loop.close();
}

TEST(EventLoop, DebugModeReportsASlowCallback) {
  EventLoop loop;
  loop.set_debug(true);
  loop.slow_callback_duration = 5ms;
  loop.call_soon([] { std::this_thread::sleep_for(20ms); });
  loop.call_soon([&] { loop.stop(); });
  testing::internal::CaptureStderr();
  loop.run_forever();
  EXPECT_NE(testing::internal::GetCapturedStderr().find("took"), std::string::npos);
  loop.close();
}

Coro<bool> debug_of_running_loop() {
  co_return weave::get_running_loop().get_debug();
}
TEST(EventLoop, RunOptionsSetTheDebugFlag) {
  EXPECT_TRUE(weave::run(debug_of_running_loop(), weave::RunOptions{true}));
  EXPECT_FALSE(weave::run(debug_of_running_loop(), weave::RunOptions{false}));
}

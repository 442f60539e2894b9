// asyncio.run / asyncio.Runner: the main coroutine's result or exception, the clean-up of tasks
// left over (cancelled and awaited, failures reported through the exception handler), several
// runs on one Runner loop, close(), and the RuntimeErrors of a closed Runner or a running loop.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave::EventLoop;
using weave_test::Trace;

namespace {

using weave_test::value_after;
using weave_test::yield;

Coro<int> fail_after(int iterations) {
  co_await yield(iterations);
  throw std::runtime_error("main failed");
}

Coro<void> background(Trace& trace, std::string name) {
  trace(name + " started");
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace(name + " cancelled");
  }
  co_await yield(2);  // clean-up that takes a few iterations is awaited
  trace(name + " cleaned up");
  throw weave::CancelledError();
}

Coro<void> fail_on_cancel() {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
  }
  throw std::runtime_error("failed during shutdown");
}

Coro<void> spawn_and_return(Trace& trace) {
  (void)weave::create_task(background(trace, "bg"));
  co_await yield();
  trace("main done");
}

Coro<EventLoop*> running_loop() {
  EventLoop& loop = weave::get_running_loop();
  EXPECT_TRUE(loop.is_running());
  co_return &loop;
}

Coro<int> count_steps(int* steps) {
  for (;;) {
    ++*steps;
    co_await yield();
  }
}

}  // namespace

// ---- run --------------------------------------------------------------------------------------

TEST(Run, ReturnsTheMainCoroutinesResult) {
  EXPECT_EQ(weave::run(value_after(42, 2)), 42);
  weave::run(yield(1));
}

TEST(Run, RaisesTheMainCoroutinesException) {
  EXPECT_THROW(weave::run(fail_after(1)), std::runtime_error);
}

Coro<void> cancel_self() {
  weave::current_task()->cancel("main cancelled");
  co_await yield();
}
TEST(Run, ACancelledMainRaisesCancelledError) {
  try {
    weave::run(cancel_self());
    ADD_FAILURE() << "run() did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "main cancelled");
  }
}

TEST(Run, NoLoopIsRunningAfterwards) {
  EventLoop* seen = weave::run(running_loop());
  EXPECT_NE(seen, nullptr);
  EXPECT_THROW((void)weave::get_running_loop(), weave::RuntimeError);
}

TEST(Run, CancelsAndAwaitsTheTasksLeftOver) {
  Trace trace;
  weave::run(spawn_and_return(trace));
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"bg started", "main done", "bg cancelled", "bg cleaned up"}));
}

Coro<void> leave_failing_task(std::vector<std::string>* reports) {
  weave::get_running_loop().set_exception_handler(
      [reports](EventLoop&, const weave::ExceptionContext& ctx) {
        reports->push_back(ctx.message);
        EXPECT_TRUE(ctx.task.has_value());
        EXPECT_NE(ctx.exception, nullptr);
      });
  (void)weave::create_task(fail_on_cancel());
  co_await yield();
}
TEST(Run, ALeftoverTaskFailingOnCancellationIsReported) {
  std::vector<std::string> reports;
  weave::run(leave_failing_task(&reports));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("unhandled exception during"), std::string::npos);
}

Coro<void> nested_run() {
  EXPECT_THROW((void)weave::run(value_after(1, 0)), weave::RuntimeError);
  weave::Runner inner;
  EXPECT_THROW((void)inner.run(value_after(1, 0)), weave::RuntimeError);
  co_return;
}
TEST(Run, RunInsideARunningLoopRaisesRuntimeError) {
  weave::run(nested_run());
}

// ---- Runner -----------------------------------------------------------------------------------

TEST(Runner, RunsSeveralCoroutinesOnOneLoop) {
  weave::Runner runner;
  EventLoop& loop = runner.get_loop();
  EXPECT_EQ(runner.run(running_loop()), &loop);
  EXPECT_EQ(runner.run(value_after(3, 1)), 3);
  EXPECT_EQ(runner.run(running_loop()), &loop);
  EXPECT_FALSE(loop.is_running());
  EXPECT_FALSE(loop.is_closed());
  runner.close();
}

Coro<void> start_counter(int* steps) {
  (void)weave::create_task(count_steps(steps));
  co_await yield();
}
TEST(Runner, TasksLeftByOneRunKeepRunningInTheNext) {
  int steps = 0;
  weave::Runner runner;
  runner.run(start_counter(&steps));
  const int after_first = steps;
  EXPECT_GE(after_first, 1);
  runner.run(yield(3));
  EXPECT_GT(steps, after_first);  // the leftover task was not cancelled between runs
  runner.close();
}

TEST(Runner, CloseCancelsRemainingTasksAndClosesTheLoop) {
  Trace trace;
  weave::Runner runner;
  runner.run(spawn_and_return(trace));
  EXPECT_EQ(trace.events, (std::vector<std::string>{"bg started", "main done"}));
  EventLoop& loop = runner.get_loop();
  runner.close();
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"bg started", "main done", "bg cancelled", "bg cleaned up"}));
  EXPECT_TRUE(loop.is_closed());
  runner.close();  // closing twice is allowed
}

TEST(Runner, AClosedRunnerRaisesRuntimeError) {
  weave::Runner runner;
  runner.run(yield(1));
  runner.close();
  EXPECT_THROW((void)runner.run(value_after(1, 0)), weave::RuntimeError);
  EXPECT_THROW((void)runner.get_loop(), weave::RuntimeError);
}

TEST(Runner, TheDestructorClosesTheRunner) {
  Trace trace;
  {
    weave::Runner runner;
    runner.run(spawn_and_return(trace));
  }
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"bg started", "main done", "bg cancelled", "bg cleaned up"}));
}

TEST(Runner, CloseWithoutAnyRunIsANoOp) {
  weave::Runner runner;
  runner.close();
  EXPECT_THROW((void)runner.run(value_after(1, 0)), weave::RuntimeError);
}

TEST(Runner, DebugOptionSetsTheLoopsDebugFlag) {
  weave::Runner runner(weave::RunOptions{true});
  EXPECT_TRUE(runner.get_loop().get_debug());
  runner.close();
}

TEST(Runner, AFailingRunLeavesTheRunnerUsable) {
  weave::Runner runner;
  EXPECT_THROW(runner.run(fail_after(1)), std::runtime_error);
  EXPECT_EQ(runner.run(value_after(5, 1)), 5);
  runner.close();
}

TEST(Runner, ShutdownDefaultExecutorIsSafeWhenNoneWasStarted) {
  weave::Runner runner;
  runner.run(yield(1));
  runner.get_loop().shutdown_default_executor();  // close() calls it again
  runner.close();
}

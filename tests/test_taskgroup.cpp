// asyncio.TaskGroup behaviour: the group waits for every child; the first failure cancels the
// siblings and the body; failures surface together as ExceptionGroup; an outside cancellation
// propagates as CancelledError while the group's own does not; the body lambda outlives its
// coroutine (asan proves the captures are still alive after the body suspended).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

weave::Coro<int> value_after(std::chrono::milliseconds delay, int value) {
  co_await weave::sleep(delay);
  co_return value;
}

weave::Coro<void> fail_after(std::chrono::milliseconds delay, std::string message) {
  co_await weave::sleep(delay);
  throw std::runtime_error(message);
}

/// Sleeps for long; records whether it was cancelled.
weave::Coro<void> sleeper(Trace* trace, std::string name) {
  try {
    co_await weave::sleep(10s);
    (*trace)(name + " finished");
  } catch (const weave::CancelledError&) {
    (*trace)(name + " cancelled");
    throw;
  }
}

std::vector<std::string> messages(const weave::ExceptionGroup& group) {
  std::vector<std::string> out;
  for (const auto& e : group.exceptions()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      out.emplace_back(x.what());
    } catch (const weave::CancelledError&) {
      out.emplace_back("CancelledError");
    }
  }
  return out;
}

weave::Coro<void> waits_for_every_child() {
  weave::Task<int> a;
  weave::Task<int> b;
  const auto start = weave::Clock::now();
  co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
    a = tg.create_task(value_after(30ms, 1));
    b = tg.create_task(value_after(10ms, 2));
    co_return;
  });
  EXPECT_GE(weave::Clock::now() - start, 30ms);
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
  EXPECT_EQ(a.result() + b.result(), 3);
}

TEST(TaskGroup, WaitsForEveryChild) {
  run_bounded(waits_for_every_child());
}

weave::Coro<void> first_failure_cancels_siblings_and_body() {
  Trace trace;
  weave::Task<void> sibling;
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      sibling = tg.create_task(sleeper(&trace, "sibling"));
      tg.create_task(fail_after(5ms, "boom"));
      try {
        co_await weave::sleep(10s);
      } catch (const weave::CancelledError&) {
        trace("body cancelled");
        throw;
      }
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(messages(group), std::vector<std::string>{"boom"});
  }
  EXPECT_TRUE(sibling.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"sibling cancelled", "body cancelled"}));
  // The group took back the cancellation it requested: the parent goes on undisturbed.
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
  co_await weave::sleep(1ms);
}

TEST(TaskGroup, FirstFailureCancelsSiblingsAndBody) {
  run_bounded(first_failure_cancels_siblings_and_body());
}

weave::Coro<int> value_now(int value) {
  co_return value;
}
weave::Coro<void> fail_now(std::string message) {
  throw std::runtime_error(message);
  co_return;
}

// asyncio 3.12: a child created with eager_start runs its first step inside create_task; one
// that finishes there is accounted at once (a failure cancels the siblings and the body).
weave::Coro<void> eager_children() {
  Trace trace;
  weave::TaskOptions named;
  named.name = "eager";
  named.eager_start = true;
  weave::TaskOptions eager;
  eager.eager_start = true;
  weave::Task<int> done;
  weave::Task<void> sibling;
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      done = tg.create_task(value_now(7), named);
      EXPECT_TRUE(done.done());
      EXPECT_EQ(done.get_name(), "eager");
      sibling = tg.create_task(sleeper(&trace, "sibling"));
      co_await weave::sleep(0s);  // the sibling starts and sleeps
      tg.create_task(fail_now("at once"), eager);
      EXPECT_EQ(weave::current_task()->cancelling(), 1);  // the group cancelled the body already
      try {
        co_await weave::sleep(10s);
      } catch (const weave::CancelledError&) {
        trace("body cancelled");
        throw;
      }
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(messages(group), std::vector<std::string>{"at once"});
  }
  EXPECT_EQ(done.result(), 7);
  EXPECT_TRUE(sibling.cancelled());
  std::sort(trace.events.begin(), trace.events.end());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"body cancelled", "sibling cancelled"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}

TEST(TaskGroup, EagerChildrenFinishingAtOnceAreAccountedAtOnce) {
  run_bounded(eager_children());
}

// The case the tour tripped over: the child fails while the parent already waits in exit.
weave::Coro<void> failure_while_waiting_in_exit() {
  Trace trace;
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      tg.create_task(sleeper(&trace, "slow"));
      tg.create_task(fail_after(5ms, "late failure"));
      co_return;
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(messages(group), std::vector<std::string>{"late failure"});
  }
  EXPECT_EQ(trace.events, std::vector<std::string>{"slow cancelled"});
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
  co_await weave::sleep(1ms);  // would raise CancelledError if the group leaked its cancel
}

TEST(TaskGroup, FailureWhileWaitingInExitLeavesParentUncancelled) {
  run_bounded(failure_while_waiting_in_exit());
}

weave::Coro<void> simultaneous_failures_are_all_reported() {
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      tg.create_task(fail_after(5ms, "one"));
      tg.create_task(fail_after(5ms, "two"));
      co_return;
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(messages(group), (std::vector<std::string>{"one", "two"}));
  }
}

TEST(TaskGroup, SimultaneousFailuresAreAllReported) {
  run_bounded(simultaneous_failures_are_all_reported());
}

weave::Coro<void> body_error_cancels_children() {
  Trace trace;
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      tg.create_task(sleeper(&trace, "child"));
      co_await weave::sleep(1ms);
      throw std::logic_error("body failed");
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(messages(group), std::vector<std::string>{"body failed"});
  }
  EXPECT_EQ(trace.events, std::vector<std::string>{"child cancelled"});
}

TEST(TaskGroup, BodyErrorCancelsChildrenAndIsReported) {
  run_bounded(body_error_cancels_children());
}

weave::Coro<void> group_with_sleeping_child(Trace* trace) {
  co_await weave::task_group([trace](weave::TaskGroup& tg) -> weave::Coro<void> {
    tg.create_task(sleeper(trace, "child"));
    co_return;
  });
  (*trace)("group returned");
}

weave::Coro<void> outside_cancellation_propagates() {
  Trace trace;
  auto parent = weave::create_task(group_with_sleeping_child(&trace));
  co_await weave::sleep(5ms);
  parent.cancel("from outside");
  try {
    co_await parent;
    ADD_FAILURE() << "the parent was not cancelled";
  } catch (const weave::CancelledError&) {
  }
  EXPECT_TRUE(parent.cancelled());
  EXPECT_EQ(trace.events, std::vector<std::string>{"child cancelled"});
}

TEST(TaskGroup, OutsideCancellationPropagatesAsCancelledError) {
  run_bounded(outside_cancellation_propagates());
}

weave::Coro<void> cancelled_child_is_not_an_error() {
  Trace trace;
  co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
    auto child = tg.create_task(sleeper(&trace, "child"));
    auto other = tg.create_task(value_after(5ms, 7));
    co_await weave::sleep(1ms);
    child.cancel();
  });
  EXPECT_EQ(trace.events, std::vector<std::string>{"child cancelled"});
}

TEST(TaskGroup, CancelledChildIsNotAnError) {
  run_bounded(cancelled_child_is_not_an_error());
}

weave::Coro<void> create_task_on_unentered_group_raises() {
  weave::TaskGroup never_entered;
  EXPECT_THROW(never_entered.create_task(value_after(0ms, 1)), weave::RuntimeError);
  co_return;
}

TEST(TaskGroup, CreateTaskOnAnUnenteredGroupRaises) {
  run_bounded(create_task_on_unentered_group_raises());
}

weave::Coro<void> create_task_while_aborting_raises() {
  bool raised = false;
  try {
    co_await weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
      tg.create_task(fail_after(1ms, "boom"));
      try {
        co_await weave::sleep(10s);
      } catch (const weave::CancelledError&) {
        try {
          tg.create_task(value_after(0ms, 1));
        } catch (const weave::RuntimeError&) {
          raised = true;
        }
        throw;
      }
    });
  } catch (const weave::ExceptionGroup&) {
  }
  EXPECT_TRUE(raised);
}

TEST(TaskGroup, CreateTaskWhileShuttingDownRaises) {
  run_bounded(create_task_while_aborting_raises());
}

weave::Coro<void> nested_failure_reaches_outer_group() {
  Trace trace;
  try {
    co_await weave::task_group([&](weave::TaskGroup& outer) -> weave::Coro<void> {
      outer.create_task(sleeper(&trace, "outer child"));
      co_await weave::task_group([&](weave::TaskGroup& inner) -> weave::Coro<void> {
        inner.create_task(sleeper(&trace, "inner child"));
        inner.create_task(fail_after(2ms, "inner boom"));
        co_return;
      });
    });
    ADD_FAILURE() << "no ExceptionGroup";
  } catch (const weave::ExceptionGroup& group) {
    EXPECT_EQ(group.exceptions().size(), 1u);
    try {
      std::rethrow_exception(group.exceptions()[0]);
    } catch (const weave::ExceptionGroup& inner) {
      EXPECT_EQ(messages(inner), std::vector<std::string>{"inner boom"});
    }
  }
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"inner child cancelled", "outer child cancelled"}));
}

TEST(TaskGroup, NestedFailureReachesTheOuterGroup) {
  run_bounded(nested_failure_reaches_outer_group());
}

weave::Coro<void> timeout_around_group() {
  Trace trace;
  const auto start = weave::Clock::now();
  try {
    co_await weave::timeout(10ms, weave::task_group([&](weave::TaskGroup& tg) -> weave::Coro<void> {
                              tg.create_task(sleeper(&trace, "child"));
                              co_return;
                            }));
    ADD_FAILURE() << "no TimeoutError";
  } catch (const weave::TimeoutError&) {
  }
  EXPECT_LT(weave::Clock::now() - start, 5s);
  EXPECT_EQ(trace.events, std::vector<std::string>{"child cancelled"});
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}

TEST(TaskGroup, TimeoutAroundTheGroupCancelsChildren) {
  run_bounded(timeout_around_group());
}

// The body is a capturing lambda that dies when start_group returns, before the group's coroutine
// has even started: task_group must keep its own copy alive until the body's coroutine finishes,
// or the captures are read after free (asan).
weave::Coro<void> start_group(std::string prefix, std::string* out) {
  return weave::task_group([prefix, out](weave::TaskGroup& tg) -> weave::Coro<void> {
    co_await weave::sleep(2ms);
    tg.create_task(value_after(1ms, 0));
    *out = prefix + "!";
  });
}

weave::Coro<void> body_lambda_outlives_its_call() {
  std::string seen;
  weave::Coro<void> group = start_group(std::string(64, 'x'), &seen);
  co_await std::move(group);
  EXPECT_EQ(seen, std::string(64, 'x') + "!");
}

TEST(TaskGroup, BodyLambdaOutlivesItsCall) {
  run_bounded(body_lambda_outlives_its_call());
}

// g++ 12 destroys a temporary closure with non-trivial captures twice when it appears inside a
// co_await expression (a compiler bug, not weave's); clang and later g++ get it right.
#if defined(__clang__) || __GNUC__ >= 13
weave::Coro<void> temporary_lambda_in_co_await() {
  std::string seen;
  co_await weave::task_group(
      [prefix = std::string(64, 'y'), &seen](weave::TaskGroup&) -> weave::Coro<void> {
        co_await weave::sleep(1ms);
        seen = prefix;
      });
  EXPECT_EQ(seen, std::string(64, 'y'));
}

TEST(TaskGroup, TemporaryLambdaInCoAwait) {
  run_bounded(temporary_lambda_in_co_await());
}
#endif

}  // namespace

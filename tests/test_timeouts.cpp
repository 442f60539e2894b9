// asyncio.timeout / timeout_at / wait_for: the deadline's own cancellation comes out as
// TimeoutError, a cancellation from outside stays CancelledError, nested timeouts raise from the
// one that expired, a zero or negative timeout behaves as asyncio's, and wait_for cancels the inner
// awaitable on timeout and waits for it to finish before raising.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Clock;
using weave::Coro;
using weave::Task;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

using weave_test::value_after;
using weave_test::yield;

Coro<int> immediate(int value) {
  co_return value;
}

Coro<int> sleep_forever(Trace& trace) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace("inner cancelled");
    throw;
  }
  co_return 0;
}

/// Catches its cancellation, cleans up over a few iterations, then re-raises.
Coro<int> slow_cleanup(Trace& trace) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace("cleanup started");
  }
  co_await yield(3);
  trace("cleanup done");
  throw weave::CancelledError();
}

/// Catches its cancellation and returns a value instead.
Coro<int> swallow(Trace& trace) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace("swallowed");
  }
  co_return 3;
}

Coro<int> fail_soon() {
  co_await yield();
  throw std::runtime_error("inner failed");
}

}  // namespace

// ---- timeout / timeout_at ---------------------------------------------------------------------

Coro<void> own_expiry() {
  Trace trace;
  EXPECT_THROW(co_await weave::timeout(20ms, sleep_forever(trace)), weave::TimeoutError);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);  // the timeout took its request back
  co_await yield();  // and nothing is left pending for the next await
}
TEST(Timeout, ItsOwnExpiryRaisesTimeoutError) {
  run_bounded(own_expiry());
}

Coro<void> in_time() {
  EXPECT_EQ(co_await weave::timeout(10s, value_after(4, 2)), 4);
  EXPECT_EQ(co_await weave::timeout_at(Clock::now() + 10s, value_after(5, 1)), 5);
  co_await weave::timeout(10s, yield(1));
}
TEST(Timeout, ReturnsTheResultWhenTheAwaitableFinishesInTime) {
  run_bounded(in_time());
}

Coro<void> body_exception() {
  EXPECT_THROW(co_await weave::timeout(10s, fail_soon()), std::runtime_error);
}
TEST(Timeout, TheAwaitablesOwnExceptionPassesThrough) {
  run_bounded(body_exception());
}

Coro<int> guarded(Trace& trace) {
  co_return co_await weave::timeout(1h, sleep_forever(trace));
}
Coro<void> outer_cancel() {
  Trace trace;
  auto t = weave::create_task(guarded(trace));
  co_await yield();
  t.cancel("outside");
  try {
    co_await t;
    ADD_FAILURE() << "the task was not cancelled";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "outside");
  }
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));
}
TEST(Timeout, ACancellationFromOutsideStaysCancelledError) {
  run_bounded(outer_cancel());
}

Coro<void> cancel_self_then_yield() {
  weave::current_task()->cancel("outside");
  co_await yield();
}
Coro<void> simultaneous() {
  // The deadline (0: due at once) and an outside request both reach the task before it resumes:
  // the outside one must not be swallowed as a TimeoutError.
  bool cancelled = false;
  try {
    co_await weave::timeout(0s, cancel_self_then_yield());
  } catch (const weave::CancelledError&) {
    cancelled = true;
  } catch (const weave::TimeoutError&) {
    ADD_FAILURE() << "an outside cancellation came out as TimeoutError";
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(weave::current_task()->uncancel(), 0);
}
TEST(Timeout, AnOutsideCancellationWinsOverASimultaneousExpiry) {
  run_bounded(simultaneous());
}

Coro<void> zero_and_negative() {
  // asyncio: a deadline already past cancels at the next iteration, so an awaitable that finishes
  // without suspending still returns its value...
  EXPECT_EQ(co_await weave::timeout(0s, immediate(1)), 1);
  EXPECT_EQ(co_await weave::timeout(-1s, immediate(2)), 2);
  EXPECT_EQ(co_await weave::timeout_at(Clock::now() - 1s, immediate(3)), 3);
  // ...and one that suspends times out.
  EXPECT_THROW(co_await weave::timeout(0s, value_after(4, 1)), weave::TimeoutError);
  EXPECT_THROW(co_await weave::timeout(-1s, value_after(5, 1)), weave::TimeoutError);
  EXPECT_THROW(co_await weave::timeout_at(Clock::now() - 1s, value_after(6, 1)),
               weave::TimeoutError);
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(Timeout, ZeroOrNegativeDelaysExpireAtTheNextIteration) {
  run_bounded(zero_and_negative());
}

Coro<void> swallowed_expiry() {
  Trace trace;
  EXPECT_EQ(co_await weave::timeout(20ms, swallow(trace)), 3);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"swallowed"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(Timeout, AnAwaitableThatSwallowsTheCancellationReturnsItsValue) {
  run_bounded(swallowed_expiry());
}

Coro<std::string> inner_block(Trace& trace) {
  try {
    co_await weave::timeout(20ms, sleep_forever(trace));
  } catch (const weave::TimeoutError&) {
    co_return "inner timed out";
  }
  co_return "no timeout";
}
Coro<void> nested_inner_expires() {
  Trace trace;
  EXPECT_EQ(co_await weave::timeout(10s, inner_block(trace)), "inner timed out");
}
TEST(Timeout, NestedTheInnerOneThatExpiresRaises) {
  run_bounded(nested_inner_expires());
}

Coro<std::string> long_inner(Trace& trace) {
  try {
    co_await weave::timeout(10s, sleep_forever(trace));
  } catch (const weave::TimeoutError&) {
    co_return "inner raised TimeoutError";
  }
  co_return "no timeout";
}
Coro<void> nested_outer_expires() {
  Trace trace;
  bool outer_raised = false;
  try {
    (void)co_await weave::timeout(20ms, long_inner(trace));
  } catch (const weave::TimeoutError&) {
    outer_raised = true;
  }
  EXPECT_TRUE(outer_raised);  // the inner one let the CancelledError through, unconverted
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(Timeout, NestedTheOuterOneThatExpiresRaisesNotTheInner) {
  run_bounded(nested_outer_expires());
}

Coro<void> timeout_task() {
  Trace trace;
  auto inner = weave::create_task(slow_cleanup(trace));
  EXPECT_THROW(co_await weave::timeout(20ms, inner), weave::TimeoutError);
  EXPECT_TRUE(inner.done());  // the timeout waited for the cancelled task to finish
  EXPECT_TRUE(inner.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"cleanup started", "cleanup done"}));
}
TEST(Timeout, OnATaskCancelsItAndWaitsForIt) {
  run_bounded(timeout_task());
}

// ---- wait_for ---------------------------------------------------------------------------------

Coro<void> wait_for_in_time() {
  EXPECT_EQ(co_await weave::wait_for(value_after(7, 2), 10s), 7);
  auto t = weave::create_task(value_after(8, 1));
  EXPECT_EQ(co_await weave::wait_for(t, 10s), 8);
}
TEST(WaitFor, ReturnsTheResultInTime) {
  run_bounded(wait_for_in_time());
}

Coro<void> wait_for_coro_timeout() {
  Trace trace;
  EXPECT_THROW(co_await weave::wait_for(sleep_forever(trace), 20ms), weave::TimeoutError);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(WaitFor, TimeoutCancelsTheInnerAndRaisesTimeoutError) {
  run_bounded(wait_for_coro_timeout());
}

Coro<void> wait_for_waits_for_cleanup() {
  Trace trace;
  auto inner = weave::create_task(slow_cleanup(trace));
  try {
    co_await weave::wait_for(inner, 20ms);
    ADD_FAILURE() << "wait_for did not time out";
  } catch (const weave::TimeoutError&) {
    trace("timeout raised");
  }
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"cleanup started", "cleanup done", "timeout raised"}));
  EXPECT_TRUE(inner.cancelled());
}
TEST(WaitFor, WaitsForTheCancelledInnerToFinishBeforeRaising) {
  run_bounded(wait_for_waits_for_cleanup());
}

Coro<void> wait_for_swallowed() {
  Trace trace;
  auto inner = weave::create_task(swallow(trace));
  // asyncio 3.12+: an inner that swallows the cancellation and returns gives its value.
  EXPECT_EQ(co_await weave::wait_for(inner, 20ms), 3);
}
TEST(WaitFor, AnInnerThatSwallowsTheCancellationGivesItsValue) {
  run_bounded(wait_for_swallowed());
}

Coro<void> wait_for_zero() {
  auto done = weave::create_task(value_after(1, 0));
  co_await yield(2);
  EXPECT_EQ(co_await weave::wait_for(done, 0s), 1);  // already done: its result

  Trace trace;
  auto pending = weave::create_task(sleep_forever(trace));
  co_await yield();
  EXPECT_THROW(co_await weave::wait_for(pending, 0s), weave::TimeoutError);
  EXPECT_TRUE(pending.cancelled());  // cancelled and waited for
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));

  EXPECT_THROW(co_await weave::wait_for(value_after(2, 1), -1s), weave::TimeoutError);

  auto fut = weave::get_running_loop().create_future<int>();
  EXPECT_THROW(co_await weave::wait_for(fut, 0s), weave::TimeoutError);
  EXPECT_TRUE(fut.cancelled());

  Trace trace2;
  auto swallower = weave::create_task(swallow(trace2));
  co_await yield();
  EXPECT_EQ(co_await weave::wait_for(swallower, 0s), 3);
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(WaitFor, ZeroOrNegativeTimeoutCancelsAtOnceUnlessDone) {
  run_bounded(wait_for_zero());
}

Coro<int> wait_for_task(Task<int> inner) {
  co_return co_await weave::wait_for(inner, 1h);
}
Coro<void> wait_for_outer_cancel() {
  Trace trace;
  auto inner = weave::create_task(sleep_forever(trace));
  {
    auto outer = weave::create_task(wait_for_task(inner));
    co_await yield();
    outer.cancel();
    EXPECT_THROW(co_await outer, weave::CancelledError);  // not TimeoutError
    EXPECT_TRUE(outer.cancelled());
  }
  EXPECT_TRUE(inner.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"inner cancelled"}));
  co_await yield(2);
}
TEST(WaitFor, CancellingTheWaitingTaskCancelsTheInnerAndStaysCancelledError) {
  run_bounded(wait_for_outer_cancel());
}

Coro<void> wait_for_future_timeout() {
  auto fut = weave::get_running_loop().create_future<int>();
  EXPECT_THROW(co_await weave::wait_for(fut, 20ms), weave::TimeoutError);
  EXPECT_TRUE(fut.cancelled());
  EXPECT_THROW(fut.set_result(1), weave::InvalidStateError);
}
TEST(WaitFor, OnAFutureCancelsItAtTheTimeout) {
  run_bounded(wait_for_future_timeout());
}

Coro<std::unique_ptr<int>> boxed(int v) {
  co_await yield();
  co_return std::make_unique<int>(v);
}
Coro<void> move_only() {
  auto a = co_await weave::timeout(10s, boxed(1));
  EXPECT_TRUE(a && *a == 1);
  auto b = co_await weave::wait_for(boxed(2), 10s);
  EXPECT_TRUE(b && *b == 2);
  auto c = co_await weave::wait_for(weave::create_task(boxed(3)), 10s);
  EXPECT_TRUE(c && *c == 3);
}
TEST(Timeout, MoveOnlyResultsPassThrough) {
  run_bounded(move_only());
}

Coro<void> sleep_traced(Trace& trace, std::string name) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace(name + " cancelled");
    throw;
  }
}
Coro<void> timeout_over_gather() {
  Trace trace;
  EXPECT_THROW(co_await weave::timeout(
                   20ms, weave::gather(sleep_traced(trace, "a"), sleep_traced(trace, "b"))),
               weave::TimeoutError);
  // The expiry cancelled the gather, which cancelled and waited for both children.
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a cancelled", "b cancelled"}));
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
}
TEST(Timeout, OverAGatherCancelsEveryChildAndRaisesTimeoutError) {
  run_bounded(timeout_over_gather());
}

// asyncio's combinators: gather (tuple and vector forms, argument order, first exception, the
// others keep running, cancelling the gather cancels the children), gather_settled, wait with each
// ReturnWhen and a timeout (never cancels), as_completed (completion order, TimeoutError), and
// shield. For each, a test cancels the task waiting in it and checks that the wait is withdrawn:
// the children finish later and must not wake the dead frame (asan watches for that).

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "support/bounded.hpp"
#include "support/reports.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave::Task;
using weave::TaskRef;
using weave_test::Reports;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

using weave_test::value_after;
using weave_test::yield;

/// A task that is still running when the test looks (it is cancelled by the test).
Coro<int> value_much_later(int value) {
  co_await weave::sleep(std::chrono::seconds(60));
  co_return value;
}

Coro<int> traced_value(Trace& trace, int value, int iterations) {
  co_await yield(iterations);
  trace("finished " + std::to_string(value));
  co_return value;
}

Coro<int> fail_after(int iterations, const char* what = "child failed") {
  co_await yield(iterations);
  throw std::runtime_error(what);
}

Coro<void> traced_sleep(Trace& trace, std::string name) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace(name + " cancelled");
    throw;
  }
}

Coro<void> void_after(int iterations) {
  co_await yield(iterations);
}

Coro<void> foo(Trace& trace) {
  trace("Running in foo");
  co_await weave::sleep(0s);
  trace("Explicit context switch to foo again");
}
Coro<void> bar(Trace& trace) {
  trace("Explicit context to bar");
  co_await weave::sleep(0s);
  trace("Implicit context switch back to bar");
}

bool contains(const std::vector<TaskRef>& v, const TaskRef& t) {
  for (const TaskRef& x : v) {
    if (x == t) return true;
  }
  return false;
}

}  // namespace

// ---- gather -----------------------------------------------------------------------------------

Coro<void> gather_tuple_order() {
  auto [a, b, c] = co_await weave::gather(value_after(1, 3), value_after(2, 1), void_after(2));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, std::monostate{});
}
TEST(Gather, TupleResultsComeInArgumentOrderNotCompletionOrder) {
  run_bounded(gather_tuple_order());
}

Coro<void> gather_mixed() {
  auto task = weave::create_task(value_after(2, 2));
  auto fut = weave::get_running_loop().create_future<int>();
  weave::get_running_loop().call_soon([fut]() mutable { fut.set_result(3); });
  auto [a, b, c] = co_await weave::gather(value_after(1, 1), task, fut);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, 3);
}
TEST(Gather, AcceptsCoroTaskAndFuture) {
  run_bounded(gather_mixed());
}

Coro<void> gather_classic_example() {
  Trace trace;
  co_await weave::gather(foo(trace), bar(trace));
  EXPECT_EQ(trace.events, (std::vector<std::string>{"Running in foo", "Explicit context to bar",
                                                    "Explicit context switch to foo again",
                                                    "Implicit context switch back to bar"}));
}
TEST(Gather, ChildrenStartInArgumentOrderAsInTheAsyncioExample) {
  run_bounded(gather_classic_example());
}

Coro<void> gather_vectors() {
  std::vector<Coro<int>> coros;
  coros.push_back(value_after(10, 3));
  coros.push_back(value_after(20, 0));
  coros.push_back(value_after(30, 1));
  auto values = co_await weave::gather(std::move(coros));
  EXPECT_EQ(values, (std::vector<int>{10, 20, 30}));

  std::vector<Task<int>> tasks;
  tasks.push_back(weave::create_task(value_after(1, 2)));
  tasks.push_back(weave::create_task(value_after(2, 1)));
  auto more = co_await weave::gather(tasks);
  EXPECT_EQ(more, (std::vector<int>{1, 2}));

  auto none = co_await weave::gather(std::vector<Coro<int>>{});
  EXPECT_TRUE(none.empty());

  std::vector<Coro<void>> voids;
  voids.push_back(void_after(1));
  voids.push_back(void_after(0));
  auto slots = co_await weave::gather(std::move(voids));
  EXPECT_EQ(slots.size(), 2u);
}
TEST(Gather, VectorFormKeepsArgumentOrder) {
  run_bounded(gather_vectors());
}

Coro<void> gather_first_exception() {
  Trace trace;
  try {
    co_await weave::gather(fail_after(1, "first"), traced_value(trace, 2, 3),
                           fail_after(2, "second"));
    ADD_FAILURE() << "gather did not raise";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "first");
  }
  EXPECT_TRUE(trace.events.empty());  // raised at once, before the others finished
  co_await yield(4);
  // The other children were not cancelled: they ran to their end.
  EXPECT_EQ(trace.events, (std::vector<std::string>{"finished 2"}));
}
TEST(Gather, TheFirstExceptionPropagatesAndTheOthersKeepRunning) {
  run_bounded(gather_first_exception());
}

// asyncio 3.12: children done before the gather is awaited complete it there and then, so an
// eager gather never goes through the loop. A callback scheduled before must still be pending.
Coro<void> gather_of_done_children() {
  auto a = weave::create_task(value_after(1, 0));
  auto b = weave::create_task(value_after(2, 0));
  co_await yield(2);
  if (!a.done() || !b.done()) {
    ADD_FAILURE() << "children not done";
    co_return;
  }
  bool callback_ran = false;
  weave::get_running_loop().call_soon([&callback_ran] { callback_ran = true; });
  auto [x, y] = co_await weave::gather(a, b);
  EXPECT_EQ(x, 1);
  EXPECT_EQ(y, 2);
  EXPECT_FALSE(callback_ran);  // no suspension: the loop did not run in between
  weave::get_running_loop().set_task_factory(weave::eager_task_factory);
  std::vector<Coro<int>> coros;
  for (int i = 0; i < 3; ++i) coros.push_back(value_after(i, 0));
  std::vector<int> all = co_await weave::gather(std::move(coros));
  weave::get_running_loop().set_task_factory(nullptr);
  EXPECT_EQ(all, (std::vector<int>{0, 1, 2}));
  EXPECT_FALSE(callback_ran);
  // A failed child done already raises from the gather at once, too.
  auto failed = weave::create_task(fail_after(0, "done already"));
  co_await yield(2);
  callback_ran = false;
  weave::get_running_loop().call_soon([&callback_ran] { callback_ran = true; });
  try {
    co_await weave::gather(failed, weave::create_task(value_much_later(3)));
    ADD_FAILURE() << "gather did not raise";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "done already");
  }
  EXPECT_FALSE(callback_ran);
}
TEST(Gather, ChildrenDoneAlreadyCompleteItWithoutSuspending) {
  run_bounded(gather_of_done_children());
}

Coro<void> gather_later_failures_not_reported() {
  Reports reports;
  reports.install();
  EXPECT_THROW(co_await weave::gather(fail_after(1, "first"), fail_after(2, "second")),
               std::runtime_error);
  co_await yield(4);
  EXPECT_TRUE(reports.messages.empty());  // asyncio marks the later exceptions retrieved
}
TEST(Gather, LaterChildFailuresAreNotReportedAsNeverRetrieved) {
  run_bounded(gather_later_failures_not_reported());
}

Coro<void> gather_child_cancelled() {
  auto a = weave::create_task(value_after(1, 5));
  auto b = weave::create_task(value_after(2, 1));
  weave::get_running_loop().call_soon([a]() mutable { a.cancel("child"); });
  EXPECT_THROW(co_await weave::gather(a, b), weave::CancelledError);
  // The gathering task itself was not cancelled.
  EXPECT_EQ(weave::current_task()->cancelling(), 0);
  co_await b;
}
TEST(Gather, ACancelledChildRaisesCancelledErrorFromGather) {
  run_bounded(gather_child_cancelled());
}

Coro<void> gather_two_sleepers(Trace& trace) {
  co_await weave::gather(traced_sleep(trace, "a"), traced_sleep(trace, "b"));
}
Coro<void> gather_cancel_outer() {
  Trace trace;
  auto outer = weave::create_task(gather_two_sleepers(trace));
  co_await yield(2);
  EXPECT_TRUE(outer.cancel("stop all"));
  try {
    co_await outer;
    ADD_FAILURE() << "the gathering task was not cancelled";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop all");
  }
  EXPECT_TRUE(outer.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a cancelled", "b cancelled"}));
}
TEST(Gather, CancellingTheWaitingTaskCancelsEveryChild) {
  run_bounded(gather_cancel_outer());
}

Coro<void> gather_of_tasks(Task<int> a, Task<int> b) {
  co_await weave::gather(a, b);
}
Coro<void> gather_cancel_then_children_finish() {
  auto a = weave::create_task(value_after(1, 0));
  auto b = weave::create_task(value_after(2, 1000));
  {
    auto outer = weave::create_task(gather_of_tasks(a, b));
    co_await yield();
    outer.cancel();
    EXPECT_THROW(co_await outer, weave::CancelledError);
  }
  // `a` finished before the cancel: the gather's cancel could not reach it, and its completion
  // slot ran after the cancel without waking anything.
  co_await yield(3);
  EXPECT_EQ(a.result(), 1);
  EXPECT_TRUE(b.cancelled());
}
TEST(Gather, CancellationWithdrawsTheWaitBeforeTheChildrenFinish) {
  run_bounded(gather_cancel_then_children_finish());
}

Coro<void> settled_tuple() {
  auto [a, b, c] = co_await weave::gather_settled(value_after(1, 2), fail_after(1), void_after(0));
  EXPECT_TRUE(a.has_value());
  EXPECT_EQ(a.value(), 1);
  EXPECT_EQ(a.error(), nullptr);
  EXPECT_FALSE(b.has_value());
  EXPECT_NE(b.error(), nullptr);
  EXPECT_THROW((void)b.value(), std::runtime_error);
  EXPECT_TRUE(c.has_value());
}
TEST(GatherSettled, EachResultIsAValueOrAnException) {
  run_bounded(settled_tuple());
}

Coro<void> settled_vector_with_cancelled_child() {
  std::vector<Task<int>> tasks;
  tasks.push_back(weave::create_task(value_after(1, 1)));
  tasks.push_back(weave::create_task(value_after(2, 100)));
  tasks.push_back(weave::create_task(fail_after(2)));
  weave::get_running_loop().call_soon([t = tasks[1]]() mutable { t.cancel(); });
  auto outcomes = co_await weave::gather_settled(tasks);
  EXPECT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].value(), 1);
  EXPECT_THROW((void)outcomes[1].value(), weave::CancelledError);
  EXPECT_THROW((void)outcomes[2].value(), std::runtime_error);
}
TEST(GatherSettled, ACancelledChildIsAnOutcomeHoldingCancelledError) {
  run_bounded(settled_vector_with_cancelled_child());
}

Coro<void> settled_sleepers(Trace& trace) {
  co_await weave::gather_settled(traced_sleep(trace, "a"), traced_sleep(trace, "b"));
}
Coro<void> settled_cancel_outer() {
  Trace trace;
  auto outer = weave::create_task(settled_sleepers(trace));
  co_await yield(2);
  outer.cancel();
  EXPECT_THROW(co_await outer, weave::CancelledError);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a cancelled", "b cancelled"}));
}
TEST(GatherSettled, CancellingTheWaitingTaskStillRaisesCancelledError) {
  run_bounded(settled_cancel_outer());
}

// ---- wait -------------------------------------------------------------------------------------

Coro<void> wait_all() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 2)),
                               weave::create_task(fail_after(1))};
  auto [done, pending] = co_await weave::wait(tasks);
  EXPECT_EQ(done.size(), 2u);
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(tasks[0].result(), 1);
  EXPECT_THROW((void)tasks[1].result(), std::runtime_error);  // wait itself never raises
}
TEST(Wait, AllCompletedWaitsForEveryTaskAndNeverRaises) {
  run_bounded(wait_all());
}

Coro<void> wait_first_completed() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 5)),
                               weave::create_task(value_after(2, 1)),
                               weave::create_task(value_after(3, 5))};
  auto [done, pending] = co_await weave::wait(tasks, weave::FIRST_COMPLETED);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(contains(done, tasks[1]));
  EXPECT_EQ(pending.size(), 2u);
  EXPECT_FALSE(tasks[0].done());
  EXPECT_EQ(co_await tasks[0], 1);  // the others were not cancelled
  EXPECT_EQ(co_await tasks[2], 3);
}
TEST(Wait, FirstCompletedReturnsAfterTheFirstTaskFinishes) {
  run_bounded(wait_first_completed());
}

Coro<void> wait_first_exception() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 1)),
                               weave::create_task(fail_after(2)),
                               weave::create_task(value_after(3, 6))};
  auto [done, pending] = co_await weave::wait(tasks, weave::FIRST_EXCEPTION);
  EXPECT_EQ(done.size(), 2u);  // the first success does not end the wait, the failure does
  EXPECT_TRUE(contains(done, tasks[0]));
  EXPECT_TRUE(contains(done, tasks[1]));
  EXPECT_TRUE(contains(pending, tasks[2]));
  (void)tasks[1].exception();
  co_await tasks[2];

  std::vector<Task<int>> fine{weave::create_task(value_after(1, 1)),
                              weave::create_task(value_after(2, 3))};
  auto [all, none] = co_await weave::wait(fine, weave::FIRST_EXCEPTION);
  EXPECT_EQ(all.size(), 2u);  // without a failure it is ALL_COMPLETED
  EXPECT_TRUE(none.empty());
}
TEST(Wait, FirstExceptionReturnsAtTheFirstFailureOrWhenAllAreDone) {
  run_bounded(wait_first_exception());
}

Coro<void> wait_timeout() {
  Trace trace;
  std::vector<Task<void>> tasks{weave::create_task(traced_sleep(trace, "a")),
                                weave::create_task(void_after(1))};
  auto [done, pending] = co_await weave::wait(tasks, weave::ALL_COMPLETED, 20ms);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_EQ(pending.size(), 1u);
  EXPECT_TRUE(contains(pending, tasks[0]));
  co_await yield(2);
  EXPECT_FALSE(tasks[0].done());  // wait does not cancel on timeout
  EXPECT_TRUE(trace.events.empty());
  tasks[0].cancel();
  EXPECT_THROW(co_await tasks[0], weave::CancelledError);
}
TEST(Wait, TimeoutReturnsThePendingTasksWithoutCancellingThem) {
  run_bounded(wait_timeout());
}

Coro<void> wait_futures() {
  weave::EventLoop& loop = weave::get_running_loop();
  std::vector<weave::Future<int>> futures{loop.create_future<int>(), loop.create_future<int>(),
                                          loop.create_future<int>()};
  weave::Future<int> second = futures[1];
  loop.call_later(1ms, [second]() mutable { second.set_result(2); });
  auto first = co_await weave::wait(futures, weave::FIRST_COMPLETED);
  EXPECT_EQ(first.done.size(), 1u);
  EXPECT_EQ(first.pending.size(), 2u);
  EXPECT_EQ(first.done[0].result(), 2);
  futures[0].set_exception(std::make_exception_ptr(std::runtime_error("f0")));
  futures[2].set_result(3);
  auto all = co_await weave::wait(futures);
  EXPECT_EQ(all.done.size(), 3u);  // wait never raises a future's exception
  EXPECT_TRUE(all.pending.empty());
  EXPECT_THROW((void)futures[0].result(), std::runtime_error);
  std::vector<weave::Future<int>> later{loop.create_future<int>()};
  auto timed = co_await weave::wait(later, weave::ALL_COMPLETED, 5ms);
  EXPECT_TRUE(timed.done.empty());
  EXPECT_EQ(timed.pending.size(), 1u);
  EXPECT_FALSE(later[0].cancelled());  // not cancelled on timeout
  EXPECT_THROW(co_await weave::wait(std::vector<weave::Future<int>>{}), weave::ValueError);
}
TEST(Wait, PlainFuturesAsAsyncioWaitAcceptsThem) {
  run_bounded(wait_futures());
}

Coro<void> wait_empty() {
  EXPECT_THROW(co_await weave::wait(std::vector<TaskRef>{}), weave::ValueError);
}
TEST(Wait, AnEmptySetRaisesValueError) {
  run_bounded(wait_empty());
}

Coro<void> wait_on(std::vector<Task<int>> tasks) {
  co_await weave::wait(tasks);
}
Coro<void> wait_cancelled() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 3)),
                               weave::create_task(value_after(2, 5))};
  {
    auto waiter = weave::create_task(wait_on(tasks));
    co_await yield();
    EXPECT_TRUE(waiter.cancel());
    EXPECT_THROW(co_await waiter, weave::CancelledError);
  }
  EXPECT_FALSE(tasks[0].cancelled());  // asyncio.wait never cancels the tasks
  EXPECT_EQ(co_await tasks[0], 1);
  EXPECT_EQ(co_await tasks[1], 2);
  co_await yield(2);
}
TEST(Wait, CancellingTheWaitingTaskWithdrawsTheWaitAndLeavesTheTasksRunning) {
  run_bounded(wait_cancelled());
}

Coro<void> wait_with_timeout(std::vector<Task<int>> tasks) {
  co_await weave::wait(tasks, weave::ALL_COMPLETED, 5ms);
}
Coro<void> wait_timeout_cancelled() {
  std::vector<Task<int>> tasks{weave::create_task(value_much_later(1))};
  {
    auto waiter = weave::create_task(wait_with_timeout(tasks));
    co_await yield();
    waiter.cancel();
    EXPECT_THROW(co_await waiter, weave::CancelledError);
  }
  co_await weave::sleep(30ms);  // past the wait's timeout: its timer was withdrawn with it
  EXPECT_FALSE(tasks[0].done());
  tasks[0].cancel();
  co_await yield(2);
}
TEST(Wait, CancellingAWaitWithATimeoutWithdrawsItsTimer) {
  run_bounded(wait_timeout_cancelled());
}

// ---- as_completed -----------------------------------------------------------------------------

Coro<void> as_completed_order() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 3)),
                               weave::create_task(value_after(2, 1)),
                               weave::create_task(value_after(3, 2))};
  std::vector<int> order;
  for (auto next : weave::as_completed(tasks)) order.push_back(co_await next);
  EXPECT_EQ(order, (std::vector<int>{2, 3, 1}));
}
TEST(AsCompleted, YieldsResultsInCompletionOrder) {
  run_bounded(as_completed_order());
}

Coro<void> as_completed_exception() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 2)),
                               weave::create_task(fail_after(1))};
  std::vector<std::string> seen;
  for (auto next : weave::as_completed(tasks)) {
    try {
      seen.push_back(std::to_string(co_await next));
    } catch (const std::runtime_error&) {
      seen.push_back("error");
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"error", "1"}));
}
TEST(AsCompleted, EachStepRaisesItsTasksException) {
  run_bounded(as_completed_exception());
}

Coro<void> as_completed_timeout() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 1)),
                               weave::create_task(value_much_later(2)),
                               weave::create_task(value_much_later(3))};
  std::vector<std::string> seen;
  for (auto next : weave::as_completed(tasks, 20ms)) {
    try {
      seen.push_back(std::to_string(co_await next));
    } catch (const weave::TimeoutError&) {
      seen.push_back("timeout");
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "timeout", "timeout"}));
  EXPECT_FALSE(tasks[1].done());  // as_completed does not cancel on timeout
  tasks[1].cancel();
  tasks[2].cancel();
  co_await yield(2);
}
TEST(AsCompleted, TimeoutRaisesTimeoutErrorForEveryRemainingStep) {
  run_bounded(as_completed_timeout());
}

Coro<void> as_completed_late_completion() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 1)),
                               weave::create_task(value_much_later(2))};
  auto it = weave::as_completed(tasks, 20ms);
  auto step = it.begin();
  EXPECT_EQ(co_await *step, 1);
  co_await weave::sleep(40ms);  // the timeout passed...
  tasks[1].cancel();            // ...then a task finishes: too late to be reported
  co_await yield(2);
  ++step;
  EXPECT_THROW(co_await *step, weave::TimeoutError);
}
TEST(AsCompleted, ATaskFinishingAfterTheTimeoutIsNotYielded) {
  run_bounded(as_completed_late_completion());
}

Coro<void> consume(std::vector<Task<int>> tasks, int* got) {
  for (auto next : weave::as_completed(tasks)) *got += co_await next;
}
Coro<void> as_completed_cancelled() {
  std::vector<Task<int>> tasks{weave::create_task(value_after(1, 1)),
                               weave::create_task(value_after(2, 4))};
  int got = 0;
  {
    auto waiter = weave::create_task(consume(tasks, &got));
    for (int i = 0; i < 10 && got == 0; ++i) co_await yield();
    EXPECT_EQ(got, 1);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, weave::CancelledError);
  }
  EXPECT_EQ(co_await tasks[1], 2);  // not cancelled, and its completion wakes nobody
  co_await yield(2);
  EXPECT_EQ(got, 1);
}
TEST(AsCompleted, CancellingTheWaitingTaskWithdrawsTheWait) {
  run_bounded(as_completed_cancelled());
}

Coro<void> consume_with_timeout(std::vector<Task<int>> tasks) {
  for (auto next : weave::as_completed(tasks, 5ms)) (void)co_await next;
}
Coro<void> as_completed_timeout_cancelled() {
  std::vector<Task<int>> tasks{weave::create_task(value_much_later(1))};
  {
    auto waiter = weave::create_task(consume_with_timeout(tasks));
    co_await yield();
    waiter.cancel();
    EXPECT_THROW(co_await waiter, weave::CancelledError);
  }
  co_await weave::sleep(30ms);  // past the timeout: its timer went with the iteration
  tasks[0].cancel();
  co_await yield(2);
}
TEST(AsCompleted, CancellingTheWaitingTaskWithdrawsTheTimeoutToo) {
  run_bounded(as_completed_timeout_cancelled());
}

Coro<std::unique_ptr<int>> boxed(int v, int iterations) {
  co_await yield(iterations);
  co_return std::make_unique<int>(v);
}
Coro<void> move_only_combinators() {
  auto [a, b] = co_await weave::gather(boxed(1, 2), boxed(2, 1));
  EXPECT_TRUE(a && *a == 1 && b && *b == 2);
  auto [c] = co_await weave::gather_settled(boxed(3, 1));
  EXPECT_TRUE(c.has_value());
  std::unique_ptr<int> taken = std::move(c).value();
  EXPECT_TRUE(taken && *taken == 3);
  auto d = co_await weave::shield(boxed(4, 1));
  EXPECT_TRUE(d && *d == 4);
  std::vector<Task<std::unique_ptr<int>>> tasks{weave::create_task(boxed(5, 1))};
  for (auto next : weave::as_completed(tasks)) {
    auto e = co_await next;
    EXPECT_TRUE(e && *e == 5);
  }
}
TEST(Gather, MoveOnlyResultsGoThroughTheCombinators) {
  run_bounded(move_only_combinators());
}

// ---- shield -----------------------------------------------------------------------------------

Coro<int> shielded(Task<int> inner) {
  co_return co_await weave::shield(inner);
}
Coro<void> shield_outer_cancelled() {
  auto inner = weave::create_task(value_after(7, 3));
  {
    auto outer = weave::create_task(shielded(inner));
    co_await yield();
    EXPECT_TRUE(outer.cancel());
    EXPECT_THROW(co_await outer, weave::CancelledError);
    EXPECT_TRUE(outer.cancelled());
  }
  EXPECT_FALSE(inner.cancelled());
  EXPECT_EQ(co_await inner, 7);  // kept running, and its completion wakes nobody
  co_await yield(2);
}
TEST(Shield, TheInnerTaskKeepsRunningWhenTheOuterIsCancelled) {
  run_bounded(shield_outer_cancelled());
}

Coro<void> shield_passes_results() {
  EXPECT_EQ(co_await weave::shield(value_after(3, 1)), 3);
  EXPECT_THROW(co_await weave::shield(fail_after(1)), std::runtime_error);
  auto done = weave::create_task(value_after(4, 0));
  co_await yield(2);
  EXPECT_EQ(co_await weave::shield(done), 4);
}
TEST(Shield, PassesTheResultAndTheException) {
  run_bounded(shield_passes_results());
}

Coro<void> shield_inner_cancelled() {
  auto inner = weave::create_task(value_after(1, 5));
  weave::get_running_loop().call_soon([inner]() mutable { inner.cancel(); });
  EXPECT_THROW(co_await weave::shield(inner), weave::CancelledError);
}
TEST(Shield, CancellingTheInnerItselfRaisesCancelledError) {
  run_bounded(shield_inner_cancelled());
}

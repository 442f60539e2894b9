// asyncio.Task behaviour: scheduling order (a task starts on the next loop iteration, tasks run
// FIFO), current_task/all_tasks, results and exceptions, cancel(msg)/cancelling()/uncancel() as in
// asyncio 3.11+, CancelledError outside std::exception, tasks whose handles are all dropped, the
// "Task exception was never retrieved" report, move-only results, and Coro awaited inline.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
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

Coro<void> record(Trace& trace, std::string name, int steps) {
  for (int i = 1; i <= steps; ++i) {
    trace(name + std::to_string(i));
    if (i < steps) co_await yield();
  }
}

Coro<int> fail_after(int iterations) {
  co_await yield(iterations);
  throw std::runtime_error("task failed");
}

Coro<void> sleep_long() {
  co_await weave::sleep(1h);
}

/// Sleeps until cancelled, records what it caught, and re-raises.
Coro<void> sleep_and_record(Trace& trace) {
  try {
    co_await weave::sleep(1h);
    trace("woke");
  } catch (const weave::CancelledError& e) {
    trace("cancelled: " + e.message());
    throw;
  }
}

/// Catches its cancellation and finishes normally.
Coro<int> swallow_cancel(Trace& trace) {
  try {
    co_await weave::sleep(1h);
  } catch (const weave::CancelledError&) {
    trace("caught");
  }
  co_await yield();  // not cancelled again: the request was delivered once
  trace("continued");
  co_return 5;
}

Coro<std::unique_ptr<int>> make_unique_after_yield(int v) {
  co_await yield();
  co_return std::make_unique<int>(v);
}

Coro<int> twice(int x) {
  co_return x * 2;
}

Coro<long> depth_chain(long depth) {
  if (depth == 0) {
    co_await yield();  // the whole chain is suspended and resumed through the task
    co_return 0;
  }
  co_return 1 + co_await depth_chain(depth - 1);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kTailCalls = false;
#else
constexpr bool kTailCalls = true;
#endif

}  // namespace

// ---- scheduling -------------------------------------------------------------------------------

Coro<void> starts_next_iteration() {
  Trace trace;
  auto t = weave::create_task(record(trace, "task", 1));
  trace("created");
  EXPECT_FALSE(t.done());
  co_await yield();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"created", "task1"}));
  EXPECT_TRUE(t.done());
}
TEST(Task, StartsOnTheNextLoopIterationNotInline) {
  run_bounded(starts_next_iteration());
}

Coro<void> fifo_interleaving() {
  Trace trace;
  auto a = weave::create_task(record(trace, "a", 3));
  auto b = weave::create_task(record(trace, "b", 3));
  auto c = weave::create_task(record(trace, "c", 2));
  co_await a;
  co_await b;
  co_await c;
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3"}));
}
TEST(Task, TasksRunInCreationOrderAndInterleaveFifo) {
  run_bounded(fifo_interleaving());
}

Coro<void> task_after_call_soon() {
  Trace trace;
  weave::get_running_loop().call_soon([&] { trace("soon"); });
  auto t = weave::create_task(record(trace, "task", 1));
  weave::get_running_loop().call_soon([&] { trace("soon after"); });
  co_await t;
  EXPECT_EQ(trace.events, (std::vector<std::string>{"soon", "task1", "soon after"}));
}
TEST(Task, FirstStepIsQueuedLikeACallSoon) {
  run_bounded(task_after_call_soon());
}

Coro<void> inline_coro_does_not_yield() {
  bool other_ran = false;
  weave::get_running_loop().call_soon([&] { other_ran = true; });
  int v = co_await twice(21);
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(other_ran);  // no scheduling happened
  co_await yield();
  EXPECT_TRUE(other_ran);
}
TEST(Task, AwaitingACoroRunsItInlineWithoutScheduling) {
  run_bounded(inline_coro_does_not_yield());
}

Coro<void> deep_chain_in_task() {
  auto t = weave::create_task(depth_chain(100'000));
  EXPECT_EQ(co_await t, 100'000);
}
TEST(Task, DeepCoroChainSuspendedInATaskResumesWithoutStackGrowth) {
  if (!kTailCalls) GTEST_SKIP() << "sanitizers disable the tail calls symmetric transfer needs";
  run_bounded(deep_chain_in_task());
}

// ---- current_task / all_tasks / names ---------------------------------------------------------

Coro<void> check_current(TaskRef* seen) {
  auto cur = weave::current_task();
  EXPECT_TRUE(cur.has_value());
  if (cur) *seen = *cur;
  co_return;
}
Coro<void> current_task_is_the_task() {
  TaskRef seen;
  auto t = weave::create_task(check_current(&seen));
  co_await t;
  EXPECT_TRUE(seen == t);
  auto self = weave::current_task();
  EXPECT_TRUE(self.has_value() && !(*self == t));
  bool in_callback_empty = false;
  weave::get_running_loop().call_soon(
      [&] { in_callback_empty = !weave::current_task().has_value(); });
  co_await yield();
  EXPECT_TRUE(in_callback_empty);
}
TEST(Task, CurrentTaskIsTheRunningTaskAndNoneInACallback) {
  run_bounded(current_task_is_the_task());
}

TEST(Task, CurrentTaskOutsideARunningLoopRaisesRuntimeError) {
  EXPECT_THROW((void)weave::current_task(), weave::RuntimeError);
}

Coro<void> all_tasks_lists_pending() {
  auto self = *weave::current_task();
  auto a = weave::create_task(value_after(1, 1));
  auto b = weave::create_task(value_after(2, 3));
  auto contains = [](const std::vector<TaskRef>& v, const TaskRef& t) {
    for (const TaskRef& x : v) {
      if (x == t) return true;
    }
    return false;
  };
  auto all = weave::all_tasks();
  EXPECT_TRUE(contains(all, self));
  EXPECT_TRUE(contains(all, a));
  EXPECT_TRUE(contains(all, b));
  co_await a;
  all = weave::all_tasks();
  EXPECT_FALSE(contains(all, a));  // done tasks are not listed
  EXPECT_TRUE(contains(all, b));
  co_await b;
}
TEST(Task, AllTasksListsTheTasksNotYetDone) {
  run_bounded(all_tasks_lists_pending());
}

TEST(Task, AllTasksOutsideARunningLoopRaisesRuntimeError) {
  EXPECT_THROW((void)weave::all_tasks(), weave::RuntimeError);
}

TEST(Task, CreateTaskOutsideARunningLoopRaisesRuntimeError) {
  EXPECT_THROW((void)weave::create_task(value_after(1, 0)), weave::RuntimeError);
}

Coro<void> names() {
  auto a = weave::create_task(value_after(1, 0));
  auto b = weave::create_task(value_after(1, 0), "worker");
  EXPECT_EQ(a.get_name().rfind("Task-", 0), 0u);
  EXPECT_EQ(b.get_name(), "worker");
  a.set_name("renamed");
  EXPECT_EQ(a.get_name(), "renamed");
  co_await a;
  co_await b;
}
TEST(Task, NamesDefaultToTaskNAndCanBeSet) {
  run_bounded(names());
}

// ---- results and exceptions -------------------------------------------------------------------

Coro<void> result_and_exception() {
  auto ok = weave::create_task(value_after(7, 1));
  EXPECT_THROW((void)ok.result(), weave::InvalidStateError);
  EXPECT_THROW((void)ok.exception(), weave::InvalidStateError);
  EXPECT_EQ(co_await ok, 7);
  EXPECT_EQ(ok.result(), 7);
  EXPECT_EQ(ok.exception(), nullptr);

  auto bad = weave::create_task(fail_after(1));
  EXPECT_THROW(co_await bad, std::runtime_error);
  EXPECT_TRUE(bad.done());
  EXPECT_FALSE(bad.cancelled());
  EXPECT_THROW((void)bad.result(), std::runtime_error);
  EXPECT_NE(bad.exception(), nullptr);
}
TEST(Task, ResultAndExceptionFollowTheTaskState) {
  run_bounded(result_and_exception());
}

Coro<void> awaits_itself(Task<void>* self) {
  co_await yield();
  co_await *self;
}
Coro<void> self_await() {
  Task<void> t;
  t = weave::create_task(awaits_itself(&t));
  EXPECT_THROW(co_await t, weave::RuntimeError);
}
TEST(Task, AwaitingItselfRaisesRuntimeError) {
  run_bounded(self_await());
}

Coro<void> done_callbacks() {
  Trace trace;
  auto t = weave::create_task(value_after(3, 1));
  t.add_done_callback([&](Task<int> x) { trace(x.result() == 3 ? "done 3" : "done ?"); });
  co_await t;
  trace("awaited");
  // The callback was registered before the await, so it runs before the awaiting task resumes.
  EXPECT_EQ(trace.events, (std::vector<std::string>{"done 3", "awaited"}));
}
TEST(Task, DoneCallbacksRunThroughTheLoop) {
  run_bounded(done_callbacks());
}

TEST(Task, ResultStaysReadableAfterTheLoopIsGone) {
  Task<int> kept;
  weave::run([](Task<int>* out) -> Coro<void> {
    *out = weave::create_task(value_after(9, 1));
    co_await *out;
  }(&kept));
  EXPECT_TRUE(kept.done());
  EXPECT_EQ(kept.result(), 9);
}

// ---- move-only results ------------------------------------------------------------------------

Coro<void> move_only_results() {
  auto t = weave::create_task(make_unique_after_yield(5));
  std::unique_ptr<int> a = co_await t;
  EXPECT_TRUE(a != nullptr && *a == 5);
  auto u = weave::create_task(make_unique_after_yield(6));
  co_await yield(2);
  std::unique_ptr<int> b = u.result();
  EXPECT_TRUE(b != nullptr && *b == 6);
}
TEST(Task, MoveOnlyResultsGoThroughAwaitAndResult) {
  run_bounded(move_only_results());
}

TEST(Task, MoveOnlyResultsGoThroughRun) {
  std::unique_ptr<int> p = weave::run(make_unique_after_yield(8));
  EXPECT_TRUE(p != nullptr && *p == 8);
  weave::Runner runner;
  std::unique_ptr<int> q = runner.run(make_unique_after_yield(9));
  EXPECT_TRUE(q != nullptr && *q == 9);
}

// ---- cancellation -----------------------------------------------------------------------------

TEST(Task, CancelledErrorIsNotAStdException) {
  static_assert(!std::is_base_of_v<std::exception, weave::CancelledError>);
  static_assert(std::is_base_of_v<std::exception, weave::TimeoutError>);
  static_assert(std::is_base_of_v<std::exception, weave::InvalidStateError>);
}

Coro<void> cancel_at_suspension_point() {
  Trace trace;
  auto t = weave::create_task(sleep_and_record(trace));
  co_await yield();
  EXPECT_EQ(t.cancelling(), 0);
  EXPECT_TRUE(t.cancel("why"));
  EXPECT_EQ(t.cancelling(), 1);
  EXPECT_FALSE(t.done());  // the task still has to run its handler
  try {
    co_await t;
    ADD_FAILURE() << "awaiting a cancelled task did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "why");
  }
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(trace.events, (std::vector<std::string>{"cancelled: why"}));
  EXPECT_THROW((void)t.exception(), weave::CancelledError);
  EXPECT_THROW(t.result(), weave::CancelledError);
}
TEST(Task, CancelRaisesCancelledErrorWithTheMessageAtTheSuspensionPoint) {
  run_bounded(cancel_at_suspension_point());
}

Coro<void> std_exception_handler_misses_cancel(bool* swallowed) {
  try {
    co_await weave::sleep(1h);
  } catch (const std::exception&) {
    *swallowed = true;
  }
}
Coro<void> not_a_std_exception() {
  bool swallowed = false;
  auto t = weave::create_task(std_exception_handler_misses_cancel(&swallowed));
  co_await yield();
  t.cancel();
  EXPECT_THROW(co_await t, weave::CancelledError);
  EXPECT_FALSE(swallowed);
  EXPECT_TRUE(t.cancelled());
}
TEST(Task, CatchingStdExceptionDoesNotSwallowACancellation) {
  run_bounded(not_a_std_exception());
}

Coro<void> catches_and_continues() {
  Trace trace;
  auto t = weave::create_task(swallow_cancel(trace));
  co_await yield();
  EXPECT_TRUE(t.cancel());
  EXPECT_TRUE(t.cancel());  // a second request before delivery: still one CancelledError
  EXPECT_EQ(t.cancelling(), 2);
  EXPECT_EQ(co_await t, 5);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.cancelling(), 2);  // asyncio does not reset the count when the task finishes
  EXPECT_EQ(trace.events, (std::vector<std::string>{"caught", "continued"}));
  EXPECT_EQ(t.uncancel(), 1);
  EXPECT_EQ(t.uncancel(), 0);
  EXPECT_EQ(t.uncancel(), 0);  // never below zero
}
TEST(Task, ATaskThatCatchesCancellationContinuesAndFinishesNormally) {
  run_bounded(catches_and_continues());
}

Coro<void> cancel_before_first_step() {
  bool ran = false;
  auto body = [](bool* flag) -> Coro<int> {
    *flag = true;
    co_return 1;
  };
  auto t = weave::create_task(body(&ran));
  EXPECT_TRUE(t.cancel("early"));
  try {
    co_await t;
    ADD_FAILURE() << "awaiting did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "early");
  }
  EXPECT_FALSE(ran);  // the body never started
  EXPECT_TRUE(t.cancelled());
}
TEST(Task, CancelBeforeTheFirstStepNeverRunsTheBody) {
  run_bounded(cancel_before_first_step());
}

Coro<void> cancel_done() {
  auto t = weave::create_task(value_after(1, 0));
  co_await t;
  EXPECT_FALSE(t.cancel());
  EXPECT_EQ(t.cancelling(), 0);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.result(), 1);
  auto f = weave::create_task(fail_after(0));
  co_await yield(2);
  EXPECT_FALSE(f.cancel());
  EXPECT_THROW((void)f.result(), std::runtime_error);
}
TEST(Task, CancelOfADoneTaskReturnsFalse) {
  run_bounded(cancel_done());
}

Coro<void> cancel_self_then_await() {
  auto self = *weave::current_task();
  EXPECT_TRUE(self.cancel("self"));
  EXPECT_EQ(self.cancelling(), 1);
  try {
    co_await yield();
    ADD_FAILURE() << "the next suspension did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "self");
  }
  EXPECT_EQ(self.uncancel(), 0);
  co_await yield();  // nothing pending any more
}
TEST(Task, ATaskCancellingItselfGetsCancelledErrorAtItsNextSuspension) {
  run_bounded(cancel_self_then_await());
}

Coro<int> cancel_self_and_return() {
  weave::current_task()->cancel("late");
  co_return 5;
}
Coro<void> return_with_pending_cancel() {
  auto t = weave::create_task(cancel_self_and_return());
  try {
    (void)co_await t;
    ADD_FAILURE() << "the task did not end cancelled";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "late");
  }
  EXPECT_TRUE(t.cancelled());  // asyncio: "Task is cancelled right before coro stops"
}
TEST(Task, ATaskThatReturnsWithACancellationPendingEndsCancelled) {
  run_bounded(return_with_pending_cancel());
}

Coro<void> uncancel_withdraws_pending() {
  auto self = *weave::current_task();
  self.cancel();
  EXPECT_EQ(self.uncancel(), 0);  // asyncio 3.13: back to zero clears the pending request
  co_await yield();
  SUCCEED();
}
TEST(Task, UncancelToZeroWithdrawsAnUndeliveredCancellation) {
  run_bounded(uncancel_withdraws_pending());
}

Coro<int> await_inner(Task<int> inner) {
  co_return co_await inner;
}
Coro<void> cancel_propagates_to_awaited_task() {
  auto inner = weave::create_task(value_after(1, 1000));
  auto outer = weave::create_task(await_inner(inner));
  co_await yield();
  outer.cancel("both");
  EXPECT_THROW(co_await outer, weave::CancelledError);
  EXPECT_TRUE(inner.cancelled());  // cancelling a task cancels the task it awaits
  EXPECT_EQ(inner.cancelling(), 1);
}
TEST(Task, CancellingATaskCancelsTheTaskItAwaits) {
  run_bounded(cancel_propagates_to_awaited_task());
}

Coro<void> cancel_sleeping_many() {
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(weave::create_task(sleep_long()));
  co_await yield();
  for (auto& t : tasks) t.cancel();
  for (auto& t : tasks) EXPECT_THROW(co_await t, weave::CancelledError);
  // Their timers were withdrawn: nothing is left for the loop to fire (asan would see a wake-up
  // of a freed frame).
  co_await weave::sleep(1ms);
}
TEST(Task, CancellingSleepingTasksWithdrawsTheirTimers) {
  run_bounded(cancel_sleeping_many());
}

Coro<void> short_sleep(bool* woke) {
  co_await weave::sleep(5ms);
  *woke = true;
}
Coro<void> cancelled_sleep_never_fires() {
  bool woke = false;
  {
    auto t = weave::create_task(short_sleep(&woke));
    co_await yield();
    t.cancel();
    EXPECT_THROW(co_await t, weave::CancelledError);
  }                             // the last handle goes: the frame holding the timer node is freed
  co_await weave::sleep(30ms);  // past the withdrawn deadline
  EXPECT_FALSE(woke);
}
TEST(Task, ACancelledSleepIsWithdrawnAndNeverWakesTheFreedFrame) {
  run_bounded(cancelled_sleep_never_fires());
}

// ---- lifetime and reporting -------------------------------------------------------------------

Coro<void> detached(bool* finished) {
  co_await yield(3);
  *finished = true;
}
Coro<void> dropped_handles() {
  bool finished = false;
  (void)weave::create_task(detached(&finished));
  co_await yield(5);
  EXPECT_TRUE(finished);
}
TEST(Task, ATaskWhoseHandlesAreAllDroppedStillRunsToCompletion) {
  run_bounded(dropped_handles());
}

Coro<void> unretrieved_dropped() {
  Reports reports;
  reports.install();
  (void)weave::create_task(fail_after(1), "lost-task");
  co_await yield(3);
  EXPECT_EQ(reports.messages.size(), 1u);
  EXPECT_TRUE(reports.contains("Task exception was never retrieved"));
  EXPECT_TRUE(reports.contains("lost-task"));
  if (!reports.exceptions.empty()) {
    EXPECT_THROW(std::rethrow_exception(reports.exceptions[0]), std::runtime_error);
    // The context names the task, as asyncio's context["future"]; a handler may keep it.
    EXPECT_TRUE(reports.tasks[0].has_value());
    if (reports.tasks[0]) {
      EXPECT_EQ(reports.tasks[0]->get_name(), "lost-task");
      EXPECT_TRUE(reports.tasks[0]->done());
      EXPECT_THROW(reports.tasks[0]->result(), std::runtime_error);
    }
  }
  reports.tasks.clear();  // the last handle: freed now, and not reported a second time
  EXPECT_EQ(reports.messages.size(), 1u);
}
TEST(Task, AnUnretrievedFailureIsReportedThroughTheExceptionHandler) {
  run_bounded(unretrieved_dropped());
}

Coro<void> unretrieved_at_last_handle() {
  Reports reports;
  reports.install();
  {
    auto t = weave::create_task(fail_after(0));
    co_await yield(2);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(reports.messages.empty());  // a handle still exists: nothing to report yet
  }
  EXPECT_EQ(reports.messages.size(), 1u);
  EXPECT_TRUE(reports.contains("Task exception was never retrieved"));
}
TEST(Task, AnUnretrievedFailureIsReportedWhenTheLastHandleGoes) {
  run_bounded(unretrieved_at_last_handle());
}

Coro<void> retrieved_not_reported() {
  Reports reports;
  reports.install();
  {
    auto t = weave::create_task(fail_after(0));
    EXPECT_THROW(co_await t, std::runtime_error);
  }
  {
    auto t = weave::create_task(fail_after(0));
    co_await yield(2);
    (void)t.exception();
  }
  {
    auto t = weave::create_task(sleep_long());
    co_await yield();
    t.cancel();
    co_await yield(2);
  }
  EXPECT_TRUE(reports.messages.empty());
}
TEST(Task, ARetrievedFailureOrACancellationIsNotReported) {
  run_bounded(retrieved_not_reported());
}

Coro<void> keep_failed_task(Task<int>* out) {
  *out = weave::create_task(fail_after(0));
  co_await yield(2);
}
TEST(Task, AFailedTasksHandleMayOutliveItsLoop) {
  testing::internal::CaptureStderr();
  {
    Task<int> kept;
    weave::run(keep_failed_task(&kept));
    EXPECT_TRUE(kept.done());
  }  // the last handle goes after the loop: reported, but not through the freed loop
  EXPECT_NE(testing::internal::GetCapturedStderr().find("Task exception was never retrieved"),
            std::string::npos);
  Task<int> read;
  weave::run(keep_failed_task(&read));
  EXPECT_THROW((void)read.result(), std::runtime_error);
}

TEST(Task, AddDoneCallbackAfterTheLoopIsGoneRaisesRuntimeError) {
  Task<int> kept;
  weave::run([](Task<int>* out) -> Coro<void> {
    *out = weave::create_task(value_after(2, 0));
    co_await *out;
  }(&kept));
  bool called = false;
  EXPECT_THROW(kept.add_done_callback([&](Task<int>) { called = true; }), weave::RuntimeError);
  EXPECT_THROW(TaskRef(kept).add_done_callback([&](TaskRef) { called = true; }),
               weave::RuntimeError);
  EXPECT_FALSE(called);
  EXPECT_EQ(kept.result(), 2);
}

Coro<int> await_future(weave::Future<int> f) {
  co_return co_await f;
}
TEST(Task, APendingTaskKeptPastItsLoopCannotBeCancelled) {
  Task<void> sleeping;
  Task<int> waiting;
  {
    weave::EventLoop loop;
    sleeping = loop.create_task(sleep_long());
    waiting = loop.create_task(await_future(loop.create_future<int>()));
    loop.run_until_complete(weave::sleep(1ms));
    loop.close();
  }
  EXPECT_FALSE(sleeping.done());
  EXPECT_FALSE(sleeping.cancel());  // its loop is gone: nothing could deliver the cancellation
  EXPECT_FALSE(waiting.cancel());   // and the future it waits on must not be touched
  EXPECT_EQ(sleeping.cancelling(), 0);
  EXPECT_THROW((void)waiting.result(), weave::InvalidStateError);
}

// ---- eager tasks and the task factory (asyncio 3.12) ----

namespace {

Coro<int> eager_body(Trace& trace, std::optional<TaskRef>& seen) {
  seen = weave::current_task();
  trace("body");
  co_return 42;
}

TEST(EagerTask, FinishesInsideCreateTaskWithItselfCurrent) {
  Trace trace;
  run_bounded([](Trace& trace) -> Coro<void> {
    std::optional<TaskRef> seen;
    std::optional<TaskRef> creator = weave::current_task();
    weave::TaskOptions options;
    options.name = "eager";
    options.eager_start = true;
    Task<int> t = weave::create_task(eager_body(trace, seen), std::move(options));
    trace("after create_task");
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 42);
    EXPECT_TRUE(seen.has_value() && *seen == t);
    EXPECT_EQ(t.get_name(), "eager");
    EXPECT_TRUE(weave::current_task() == creator);
    EXPECT_EQ(weave::all_tasks().size(), 1u);  // not registered once done
    EXPECT_EQ(co_await t, 42);
  }(trace));
  EXPECT_EQ(trace.events, (std::vector<std::string>{"body", "after create_task"}));
}

TEST(EagerTask, ASuspendingEagerTaskGoesOnAsALazyOne) {
  Trace trace;
  run_bounded([](Trace& trace) -> Coro<void> {
    weave::TaskOptions eager;
    eager.eager_start = true;
    auto lazy = weave::create_task(record(trace, "lazy", 2));
    auto t = weave::create_task(record(trace, "eager", 3), std::move(eager));
    trace("created");
    EXPECT_FALSE(t.done());
    co_await t;
    co_await lazy;
  }(trace));
  // asyncio: eager1 runs inside create_task; then the queue in order (lazy1, eager2, ...).
  EXPECT_EQ(trace.events,
            (std::vector<std::string>{"eager1", "created", "lazy1", "eager2", "lazy2", "eager3"}));
}

TEST(EagerTask, StartsLazilyWhenTheLoopIsNotRunning) {
  weave::EventLoop loop;
  Trace trace;
  weave::TaskOptions options;
  options.eager_start = true;
  auto t = loop.create_task(record(trace, "t", 1), std::move(options));
  EXPECT_TRUE(trace.events.empty());
  EXPECT_FALSE(t.done());
  loop.run_until_complete(t);
  EXPECT_EQ(trace.events, std::vector<std::string>{"t1"});
  loop.close();
}

TEST(EagerTask, ExceptionsAndCancellationOfTheEagerStep) {
  run_bounded([]() -> Coro<void> {
    weave::TaskOptions options;
    options.eager_start = true;
    auto failed = weave::create_task(fail_after(0), options);
    EXPECT_TRUE(failed.done());
    EXPECT_THROW(failed.result(), std::runtime_error);
    auto sleeping = weave::create_task(sleep_long(), options);
    EXPECT_FALSE(sleeping.done());
    EXPECT_TRUE(sleeping.cancel());
    co_await weave::sleep(0s);
    EXPECT_TRUE(sleeping.cancelled());
  }());
}

TEST(TaskFactory, GetSetAndReset) {
  run_bounded([]() -> Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    EXPECT_FALSE(loop.get_task_factory());
    loop.set_task_factory(weave::eager_task_factory);
    EXPECT_TRUE(loop.get_task_factory());
    Trace trace;
    auto t = weave::create_task(record(trace, "x", 1));
    EXPECT_TRUE(t.done());  // eager through the factory, with the plain create_task
    loop.set_task_factory(nullptr);
    EXPECT_FALSE(loop.get_task_factory());
    auto u = weave::create_task(record(trace, "y", 1));
    EXPECT_FALSE(u.done());
    co_await u;
    EXPECT_EQ(trace.events, (std::vector<std::string>{"x1", "y1"}));
  }());
}

TEST(TaskFactory, CustomFactoryAndCreateEagerTaskFactory) {
  run_bounded([]() -> Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    int calls = 0;
    loop.set_task_factory([&](weave::EventLoop&, weave::TaskOptions& o) {
      ++calls;
      o.name = "made-" + o.name;
    });
    auto a = weave::create_task(value_after(1, 0), "a");
    EXPECT_EQ(a.get_name(), "made-a");
    EXPECT_FALSE(a.done());
    loop.set_task_factory(weave::create_eager_task_factory(
        [&](weave::EventLoop&, weave::TaskOptions& o) { o.name = "eager-" + o.name; }));
    auto b = weave::create_task(value_after(2, 0), "b");
    EXPECT_EQ(b.get_name(), "eager-b");
    EXPECT_TRUE(b.done());
    EXPECT_EQ(co_await a, 1);
    EXPECT_EQ(calls, 1);
    // gather through the eager factory: every child done before gather waits.
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 100; ++i) coros.push_back(value_after(i, 0));
    std::vector<int> results = co_await weave::gather(std::move(coros));
    EXPECT_EQ(results.size(), 100u);
    EXPECT_EQ(results[99], 99);
    loop.set_task_factory(nullptr);
  }());
}

}  // namespace

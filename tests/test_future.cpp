// asyncio.Future behaviour: the state machine and its InvalidStateError cases, cancel(msg), done
// callbacks (always scheduled with call_soon, in registration order, never run inline), awaiting
// pending and done futures, move-only values, and the "exception was never retrieved" report.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/reports.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave::Future;
using weave_test::Reports;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

using weave_test::yield;

template <class T>
Future<T> new_future() {
  return weave::get_running_loop().create_future<T>();
}

template <class T>
Coro<T> await_future(Future<T> f) {
  co_return co_await f;
}

Coro<void> set_later(Future<int> f, int value) {
  co_await yield();
  f.set_result(value);
}

}  // namespace

TEST(Future, NewFutureIsPendingAndHasNoResult) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    EXPECT_FALSE(f.done());
    EXPECT_FALSE(f.cancelled());
    EXPECT_THROW(f.result(), weave::InvalidStateError);
    EXPECT_THROW((void)f.exception(), weave::InvalidStateError);
    EXPECT_EQ(&f.get_loop(), &weave::get_running_loop());
    co_return;
  }());
}

TEST(Future, SetResultMakesItDoneWithThatValue) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    f.set_result(42);
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
    EXPECT_EQ(f.result(), 42);
    EXPECT_EQ(f.result(), 42);  // result() may be read again
    EXPECT_EQ(f.exception(), nullptr);
    co_return;
  }());
}

TEST(Future, VoidFutureSetResult) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<void>();
    f.set_result();
    EXPECT_TRUE(f.done());
    EXPECT_NO_THROW(f.result());
    co_await f;
  }());
}

TEST(Future, CopiesShareOneState) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    Future<int> g = f;
    g.set_result(7);
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.result(), 7);
    co_return;
  }());
}

TEST(Future, SettingADoneFutureRaisesInvalidStateError) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    f.set_result(1);
    EXPECT_THROW(f.set_result(2), weave::InvalidStateError);
    EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                 weave::InvalidStateError);
    EXPECT_EQ(f.result(), 1);

    auto g = new_future<int>();
    g.set_exception(std::make_exception_ptr(std::runtime_error("x")));
    EXPECT_THROW(g.set_result(2), weave::InvalidStateError);
    (void)g.exception();

    auto h = new_future<int>();
    EXPECT_TRUE(h.cancel());
    EXPECT_THROW(h.set_result(2), weave::InvalidStateError);
    EXPECT_THROW(h.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                 weave::InvalidStateError);
    co_return;
  }());
}

TEST(Future, SetExceptionWithANullExceptionPtrRaisesValueError) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    EXPECT_THROW(f.set_exception(nullptr), weave::ValueError);
    EXPECT_FALSE(f.done());  // still pending: no value, no exception to read garbage from
    f.cancel();
    co_return;
  }());
}

TEST(Future, SetExceptionIsRaisedByResultAndReturnedByException) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
    try {
      (void)f.result();
      ADD_FAILURE() << "result() did not raise";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "boom");
    }
    std::exception_ptr e = f.exception();
    EXPECT_NE(e, nullptr);
    if (e) {
      EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
    }
    co_return;
  }());
}

TEST(Future, CancelWithMessageIsReportedByResultAndException) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    EXPECT_TRUE(f.cancel("going away"));
    EXPECT_TRUE(f.done());
    EXPECT_TRUE(f.cancelled());
    try {
      (void)f.result();
      ADD_FAILURE() << "result() did not raise";
    } catch (const weave::CancelledError& e) {
      EXPECT_EQ(e.message(), "going away");
    }
    EXPECT_THROW((void)f.exception(), weave::CancelledError);
    EXPECT_FALSE(f.cancel("again"));  // already done
    co_return;
  }());
}

TEST(Future, CancelWithoutMessageHasAnEmptyMessage) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<void>();
    EXPECT_TRUE(f.cancel());
    try {
      f.result();
      ADD_FAILURE() << "result() did not raise";
    } catch (const weave::CancelledError& e) {
      EXPECT_EQ(e.message(), "");
    }
    co_return;
  }());
}

TEST(Future, CancelOfADoneFutureReturnsFalse) {
  run_bounded([]() -> Coro<void> {
    auto f = new_future<int>();
    f.set_result(3);
    EXPECT_FALSE(f.cancel());
    EXPECT_FALSE(f.cancelled());
    EXPECT_EQ(f.result(), 3);
    co_return;
  }());
}

Coro<void> callbacks_are_scheduled_in_order() {
  Trace trace;
  auto f = new_future<int>();
  f.add_done_callback([&](Future<int> g) { trace(g.result() == 1 ? "a1" : "a?"); });
  f.add_done_callback([&](Future<int>) { trace("b"); });
  f.add_done_callback([&](Future<int>) { trace("c"); });
  f.set_result(1);
  trace("after set_result");  // callbacks never run inline
  co_await yield();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"after set_result", "a1", "b", "c"}));
}
TEST(Future, DoneCallbacksAreScheduledInRegistrationOrderNotRunInline) {
  run_bounded(callbacks_are_scheduled_in_order());
}

Coro<void> callbacks_queue_behind_ready_callbacks() {
  Trace trace;
  auto& loop = weave::get_running_loop();
  auto f = new_future<int>();
  f.add_done_callback([&](Future<int>) { trace("done callback"); });
  loop.call_soon([&] { trace("soon 1"); });
  f.set_result(1);
  loop.call_soon([&] { trace("soon 2"); });
  co_await yield(2);
  EXPECT_EQ(trace.events, (std::vector<std::string>{"soon 1", "done callback", "soon 2"}));
}
TEST(Future, DoneCallbacksGoThroughCallSoonInCompletionOrder) {
  run_bounded(callbacks_queue_behind_ready_callbacks());
}

Coro<void> callback_on_done_future() {
  Trace trace;
  auto f = new_future<int>();
  f.set_result(5);
  f.add_done_callback([&](Future<int> g) { trace(g.result() == 5 ? "cb 5" : "cb ?"); });
  trace("added");
  co_await yield();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"added", "cb 5"}));
}
TEST(Future, CallbackAddedToADoneFutureIsScheduledNotRunInline) {
  run_bounded(callback_on_done_future());
}

Coro<void> remove_callbacks() {
  Trace trace;
  auto f = new_future<void>();
  auto a = f.add_done_callback([&](Future<void>) { trace("a"); });
  auto b = f.add_done_callback([&](Future<void>) { trace("b"); });
  f.add_done_callback([&](Future<void>) { trace("c"); });
  EXPECT_EQ(f.remove_done_callback(b), 1u);
  EXPECT_EQ(f.remove_done_callback(b), 0u);
  f.set_result();
  EXPECT_EQ(f.remove_done_callback(a), 0u);  // already scheduled: too late
  co_await yield();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"a", "c"}));
}
TEST(Future, RemoveDoneCallbackRemovesOnlyAnUnscheduledCallback) {
  run_bounded(remove_callbacks());
}

Coro<void> callback_of_cancelled_future() {
  Trace trace;
  auto f = new_future<int>();
  f.add_done_callback([&](Future<int> g) { trace(g.cancelled() ? "cancelled" : "not cancelled"); });
  f.cancel();
  EXPECT_TRUE(trace.events.empty());
  co_await yield();
  EXPECT_EQ(trace.events, (std::vector<std::string>{"cancelled"}));
}
TEST(Future, CancelSchedulesTheDoneCallbacks) {
  run_bounded(callback_of_cancelled_future());
}

Coro<void> throwing_callback() {
  Reports reports;
  reports.install();
  auto f = new_future<int>();
  bool second = false;
  f.add_done_callback([](Future<int>) { throw std::runtime_error("callback failed"); });
  f.add_done_callback([&](Future<int>) { second = true; });
  f.set_result(1);
  co_await yield();
  EXPECT_TRUE(second);
  EXPECT_EQ(reports.messages.size(), 1u);
  EXPECT_TRUE(reports.contains("Exception in callback"));
}
TEST(Future, ACallbackThatThrowsGoesToTheExceptionHandlerAndOthersStillRun) {
  run_bounded(throwing_callback());
}

Coro<void> await_pending() {
  auto f = new_future<int>();
  auto setter = weave::create_task(set_later(f, 9));
  EXPECT_EQ(co_await f, 9);
  co_await setter;
}
TEST(Future, AwaitingAPendingFutureSuspendsUntilItsResult) {
  run_bounded(await_pending());
}

Coro<void> await_done_does_not_yield() {
  bool other_ran = false;
  weave::get_running_loop().call_soon([&] { other_ran = true; });
  auto f = new_future<int>();
  f.set_result(4);
  EXPECT_EQ(co_await f, 4);
  EXPECT_FALSE(other_ran);  // a done future is not a suspension point
  co_await yield();
  EXPECT_TRUE(other_ran);
}
TEST(Future, AwaitingADoneFutureReturnsAtOnceWithoutYielding) {
  run_bounded(await_done_does_not_yield());
}

Coro<void> await_failed() {
  auto f = new_future<int>();
  f.set_exception(std::make_exception_ptr(std::logic_error("bad")));
  EXPECT_THROW(co_await f, std::logic_error);
  auto g = new_future<int>();
  auto waiter = weave::create_task(await_future(g));
  co_await yield();
  g.set_exception(std::make_exception_ptr(std::logic_error("later")));
  EXPECT_THROW(co_await waiter, std::logic_error);
}
TEST(Future, AwaitingAFailedFutureRaisesItsException) {
  run_bounded(await_failed());
}

Coro<void> await_cancelled() {
  auto f = new_future<int>();
  auto waiter = weave::create_task(await_future(f));
  co_await yield();
  f.cancel("stop");
  try {
    co_await waiter;
    ADD_FAILURE() << "the waiter did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop");
  }
  EXPECT_TRUE(waiter.cancelled());  // the CancelledError escaped the task: it is cancelled
}
TEST(Future, AwaitingACancelledFutureRaisesCancelledErrorWithItsMessage) {
  run_bounded(await_cancelled());
}

Coro<void> cancel_the_waiter() {
  auto f = new_future<int>();
  auto waiter = weave::create_task(await_future(f));
  co_await yield();
  EXPECT_TRUE(waiter.cancel("abandon"));
  EXPECT_TRUE(f.cancelled());  // asyncio: cancelling the task cancels the future it waits on
  co_await yield(2);
  EXPECT_TRUE(waiter.cancelled());
  try {
    (void)waiter.result();
    ADD_FAILURE() << "result() did not raise";
  } catch (const weave::CancelledError& e) {
    EXPECT_EQ(e.message(), "abandon");
  }
  EXPECT_THROW(f.set_result(1), weave::InvalidStateError);
}
TEST(Future, CancellingTheAwaitingTaskCancelsTheFutureAndWithdrawsTheWait) {
  run_bounded(cancel_the_waiter());
}

Coro<void> several_awaiters() {
  auto f = new_future<int>();
  auto a = weave::create_task(await_future(f));
  auto b = weave::create_task(await_future(f));
  co_await yield();
  f.set_result(11);
  EXPECT_EQ(co_await a, 11);
  EXPECT_EQ(co_await b, 11);
}
TEST(Future, SeveralTasksMayAwaitOneFuture) {
  run_bounded(several_awaiters());
}

Coro<void> move_only() {
  auto f = new_future<std::unique_ptr<int>>();
  auto waiter = weave::create_task(await_future(f));
  co_await yield();
  f.set_result(std::make_unique<int>(17));
  std::unique_ptr<int> p = co_await waiter;
  EXPECT_TRUE(p != nullptr && *p == 17);

  auto g = new_future<std::unique_ptr<int>>();
  g.set_result(std::make_unique<int>(18));
  std::unique_ptr<int> q = g.result();
  EXPECT_TRUE(q != nullptr && *q == 18);
}
TEST(Future, MoveOnlyValuesGoThroughAwaitAndResult) {
  run_bounded(move_only());
}

Coro<void> never_retrieved(bool retrieve) {
  Reports reports;
  reports.install();
  {
    auto f = new_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("lost")));
    if (retrieve) (void)f.exception();
  }
  co_await yield();
  if (retrieve) {
    EXPECT_TRUE(reports.messages.empty());
  } else {
    EXPECT_EQ(reports.messages.size(), 1u);
    EXPECT_TRUE(reports.contains("Future exception was never retrieved"));
  }
}
TEST(Future, AnUnretrievedExceptionIsReportedWhenTheLastHandleGoes) {
  run_bounded(never_retrieved(false));
}
TEST(Future, ARetrievedExceptionIsNotReported) {
  run_bounded(never_retrieved(true));
}

Coro<void> cancelled_never_reported() {
  Reports reports;
  reports.install();
  {
    auto f = new_future<int>();
    f.cancel();
  }
  co_await yield();
  EXPECT_TRUE(reports.messages.empty());
}
TEST(Future, ACancelledFutureIsNeverReported) {
  run_bounded(cancelled_never_reported());
}

Coro<void> keep_failed_future(Future<int>* out) {
  *out = new_future<int>();
  out->set_exception(std::make_exception_ptr(std::runtime_error("kept")));
  co_return;
}
TEST(Future, AFailedFuturesHandleMayOutliveItsLoop) {
  testing::internal::CaptureStderr();
  {
    Future<int> kept;
    weave::run(keep_failed_future(&kept));
    EXPECT_TRUE(kept.done());
  }  // the last handle goes after the loop: reported, but not through the freed loop
  EXPECT_NE(testing::internal::GetCapturedStderr().find("Future exception was never retrieved"),
            std::string::npos);
}

TEST(Future, AddDoneCallbackOnAClosedLoopRaisesRuntimeError) {
  weave::EventLoop loop;
  auto f = loop.create_future<int>();
  f.set_result(1);
  loop.close();
  bool called = false;
  EXPECT_THROW(f.add_done_callback([&](Future<int>) { called = true; }), weave::RuntimeError);
  EXPECT_FALSE(called);
  EXPECT_EQ(f.result(), 1);
}

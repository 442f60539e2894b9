// wrap_future and run_coroutine_threadsafe: futures chained across threads, with results,
// exceptions (their types kept) and cancellation flowing both ways, and loops that close or go
// away while the other side is still busy. Runs on both backends and under ThreadSanitizer.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/bounded.hpp"
#include "support/steps.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave_test::run_bounded;
using weave_test::scaled;
using weave_test::until;
namespace cf = weave::concurrent;

namespace {

const auto kLong = scaled(10s);  // only reached when something is broken

/// Spins (with a bound) in a plain thread until `cond` holds.
template <class F>
bool eventually(F cond) {
  auto deadline = std::chrono::steady_clock::now() + kLong;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

struct CustomError : std::runtime_error {
  explicit CustomError(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

/// A loop running forever in its own thread, as asyncio's run_coroutine_threadsafe examples
/// have it; stopped and joined by the destructor.
class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.run_forever(); }) {}
  ~LoopThread() {
    loop_.call_soon_threadsafe([this] { loop_.stop(); });
    thread_.join();
    loop_.shutdown_default_executor();
    loop_.close();
  }
  weave::EventLoop& loop() { return loop_; }

 private:
  weave::EventLoop loop_;
  std::thread thread_;
};

// ---- wrap_future --------------------------------------------------------------------------------

Coro<void> wrapped_result_from_another_thread() {
  cf::Future<std::string> source;
  weave::Future<std::string> wrapped = weave::wrap_future(source);
  std::thread completer([source] {
    std::this_thread::sleep_for(10ms);
    source.set_result("from a thread");
  });
  EXPECT_EQ(co_await wrapped, "from a thread");
  completer.join();

  cf::Future<int> done;
  done.set_result(5);  // already done when wrapped
  EXPECT_EQ(co_await weave::wrap_future(done), 5);

  cf::Future<void> nothing;
  std::thread t2([nothing] { nothing.set_result(); });
  co_await weave::wrap_future(nothing);
  t2.join();
}

Coro<void> wrapped_exception_keeps_its_type() {
  cf::Future<int> source;
  std::thread completer(
      [source] { source.set_exception(std::make_exception_ptr(CustomError(11))); });
  try {
    co_await weave::wrap_future(source);
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 11);
  }
  completer.join();
}

Coro<void> cancelling_the_wrapper_cancels_the_source() {
  cf::Future<int> source;
  weave::Future<int> wrapped = weave::wrap_future(source);
  EXPECT_TRUE(wrapped.cancel());
  co_await until([&] { return source.done(); });
  EXPECT_TRUE(source.cancelled());
}

Coro<void> cancelling_the_source_cancels_the_wrapper() {
  cf::Future<int> source;
  weave::Future<int> wrapped = weave::wrap_future(source);
  std::thread canceller([source] { EXPECT_TRUE(source.cancel()); });
  EXPECT_THROW(co_await wrapped, weave::CancelledError);
  EXPECT_TRUE(wrapped.cancelled());
  canceller.join();
}

Coro<int> await_wrapped(cf::Future<int> source) {
  co_return co_await weave::wrap_future(std::move(source));
}

Coro<void> cancelling_the_awaiting_task_cancels_the_source() {
  cf::Future<int> source;
  auto task = weave::create_task(await_wrapped(source));
  co_await weave::sleep(0s);
  task.cancel();
  EXPECT_THROW(co_await task, weave::CancelledError);
  co_await until([&] { return source.done(); });
  EXPECT_TRUE(source.cancelled());
}

Coro<void> running_source_finishes_after_the_wrapper_was_cancelled() {
  cf::Future<int> source;
  EXPECT_TRUE(source.set_running_or_notify_cancel());  // as an executor does before the call
  weave::Future<int> wrapped = weave::wrap_future(source);
  wrapped.cancel();
  co_await weave::sleep(1ms);
  EXPECT_FALSE(source.cancelled());  // a running call cannot be cancelled
  std::thread completer([source] { source.set_result(3); });
  completer.join();
  co_await weave::sleep(1ms);  // the late result reaches the loop and is dropped
  EXPECT_TRUE(wrapped.cancelled());
}

Coro<void> wrap_and_drop(cf::Future<int> source) {
  { auto dropped = weave::wrap_future(source); }
  auto kept = weave::wrap_future(source);
  co_await weave::sleep(0s);
}

// ---- run_coroutine_threadsafe
// --------------------------------------------------------------------

Coro<int> add_on_the_loop(int a, int b, std::thread::id* ran_on) {
  co_await weave::sleep(1ms);
  *ran_on = std::this_thread::get_id();
  co_return a + b;
}

Coro<int> fail_on_the_loop() {
  co_await weave::sleep(0s);
  throw CustomError(23);
}

Coro<int> wait_to_be_cancelled(std::atomic<bool>& started, std::atomic<bool>& saw_cancel) {
  started = true;
  try {
    co_await weave::sleep(kLong);
  } catch (const weave::CancelledError&) {
    saw_cancel = true;
    throw;
  }
  co_return 0;
}

Coro<void> no_op() {
  co_return;
}

// A to_thread call that comes back into its own loop: the classic bridge round trip.
Coro<int> twice(int x) {
  co_await weave::sleep(0s);
  co_return 2 * x;
}

Coro<int> thread_calls_back_into_the_loop() {
  weave::EventLoop& loop = weave::get_running_loop();
  co_return co_await weave::to_thread(
      [&loop] { return weave::run_coroutine_threadsafe(twice(21), loop).result(kLong); });
}

}  // namespace

TEST(WrapFuture, ResultsFromAnotherThread) {
  run_bounded(wrapped_result_from_another_thread());
}

TEST(WrapFuture, ExceptionKeepsItsType) {
  run_bounded(wrapped_exception_keeps_its_type());
}

TEST(WrapFuture, CancellingTheWrapperCancelsTheSource) {
  run_bounded(cancelling_the_wrapper_cancels_the_source());
}

TEST(WrapFuture, CancellingTheSourceCancelsTheWrapper) {
  run_bounded(cancelling_the_source_cancels_the_wrapper());
}

TEST(WrapFuture, CancellingTheAwaitingTaskCancelsTheSource) {
  run_bounded(cancelling_the_awaiting_task_cancels_the_source());
}

TEST(WrapFuture, RunningSourceThatFinishesLateIsDropped) {
  run_bounded(running_source_finishes_after_the_wrapper_was_cancelled());
}

TEST(WrapFuture, SourceCompletedAfterItsLoopIsDestroyed) {
  cf::Future<int> source;
  {
    weave::EventLoop loop;
    loop.run_until_complete(wrap_and_drop(source));
    loop.close();
  }
  std::thread completer([source] { source.set_result(1); });
  completer.join();
  EXPECT_EQ(source.result(0s), 1);
}

TEST(RunCoroutineThreadsafe, ResultComesBackToTheCallingThread) {
  LoopThread lt;
  std::thread::id ran_on;
  cf::Future<int> f = weave::run_coroutine_threadsafe(add_on_the_loop(2, 3, &ran_on), lt.loop());
  EXPECT_EQ(f.result(kLong), 5);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  cf::Future<void> v = weave::run_coroutine_threadsafe(no_op(), lt.loop());
  v.result(kLong);
  EXPECT_TRUE(v.done());
}

TEST(RunCoroutineThreadsafe, ExceptionKeepsItsType) {
  LoopThread lt;
  cf::Future<int> f = weave::run_coroutine_threadsafe(fail_on_the_loop(), lt.loop());
  try {
    f.result(kLong);
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 23);
  }
}

TEST(RunCoroutineThreadsafe, CancellingTheFutureCancelsTheTask) {
  LoopThread lt;
  std::atomic<bool> started{false}, saw_cancel{false};
  cf::Future<int> f =
      weave::run_coroutine_threadsafe(wait_to_be_cancelled(started, saw_cancel), lt.loop());
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW(f.result(kLong), weave::CancelledError);
  EXPECT_TRUE(eventually([&] { return saw_cancel.load(); }));
}

TEST(RunCoroutineThreadsafe, CancelledBeforeItStartsNeverRuns) {
  weave::EventLoop loop;  // not running yet
  std::atomic<bool> started{false}, saw_cancel{false};
  cf::Future<int> f =
      weave::run_coroutine_threadsafe(wait_to_be_cancelled(started, saw_cancel), loop);
  EXPECT_TRUE(f.cancel());
  loop.run_until_complete(weave::sleep(5ms));
  EXPECT_FALSE(started);
  loop.close();
}

TEST(RunCoroutineThreadsafe, LoopClosedBeforeTheTaskStartsFailsTheFuture) {
  weave::EventLoop loop;
  cf::Future<void> f = weave::run_coroutine_threadsafe(no_op(), loop);
  loop.close();
  EXPECT_THROW(f.result(kLong), weave::RuntimeError);
  EXPECT_THROW((void)weave::run_coroutine_threadsafe(no_op(), loop), weave::RuntimeError);
}

TEST(RunCoroutineThreadsafe, FromAThreadOfTheSameLoop) {
  EXPECT_EQ(run_bounded(thread_calls_back_into_the_loop()), 42);
}

// to_thread, run_in_executor, set_default_executor and shutdown_default_executor: the loop's
// side of concurrent.futures. Blocking calls are held by gates the tests open, never by sleeps
// whose length matters; every wait is bounded. Runs on both backends and under ThreadSanitizer.

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

/// Opened by one thread, waited for (with a bound) by another.
class Gate {
 public:
  void open() { latch_.count_down(); }
  bool is_open() const { return latch_.try_wait(); }
  void wait() const {
    auto deadline = std::chrono::steady_clock::now() + scaled(10s);
    while (!latch_.try_wait()) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("gate timeout");
      std::this_thread::sleep_for(1ms);
    }
  }

 private:
  mutable std::latch latch_{1};
};

std::string thread_name() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

int square(int x) {
  return x * x;
}

struct CustomError : std::runtime_error {
  explicit CustomError(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

// ---- results and errors ------------------------------------------------------------------------

Coro<void> returns_results_from_another_thread() {
  const auto loop_thread = std::this_thread::get_id();
  EXPECT_EQ(co_await weave::to_thread(square, 7), 49);
  std::thread::id worker = co_await weave::to_thread([] { return std::this_thread::get_id(); });
  EXPECT_NE(worker, loop_thread);
  std::string s = co_await weave::to_thread([](std::string a, std::string b) { return a + b; },
                                            std::string("to_"), std::string("thread"));
  EXPECT_EQ(s, "to_thread");
  int calls = 0;
  co_await weave::to_thread([&calls] { ++calls; });  // void
  EXPECT_EQ(calls, 1);
}

Coro<void> move_only_results_are_moved() {
  std::unique_ptr<int> p = co_await weave::to_thread([] { return std::make_unique<int>(8); });
  EXPECT_EQ(*p, 8);
  auto owned = std::make_unique<int>(5);
  // Named, not a temporary in the co_await expression: g++ 12 destroys an init-captured lambda
  // temporary there twice.
  auto call = [q = std::move(owned)] { return *q * 2; };
  int doubled = co_await weave::to_thread(std::move(call));
  EXPECT_EQ(doubled, 10);
}

Coro<void> exceptions_keep_their_type() {
  try {
    co_await weave::to_thread([]() -> int { throw std::out_of_range("index 9"); });
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "index 9");
  }
  try {
    co_await weave::to_thread([] { throw CustomError(17); });
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 17);
  }
}

// The call blocks until the ticker has ticked three times: only possible if the loop runs on.
Coro<int> ticker(Gate& gate, std::atomic<int>& ticks) {
  while (!gate.is_open()) {
    co_await weave::sleep(1ms);
    if (++ticks == 3) gate.open();
  }
  co_return ticks.load();
}

Coro<void> loop_runs_while_the_call_blocks() {
  Gate gate;
  std::atomic<int> ticks{0};
  auto t = weave::create_task(ticker(gate, ticks));
  int seen = co_await weave::to_thread([&] {
    gate.wait();
    return ticks.load();
  });
  EXPECT_GE(seen, 3);
  co_await t;
}

Coro<void> many_calls_at_once() {
  std::vector<Coro<int>> calls;
  for (int i = 0; i < 64; ++i) calls.push_back(weave::to_thread(square, i));
  std::vector<int> results = co_await weave::gather(std::move(calls));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i * i);
}

// ---- cancellation ------------------------------------------------------------------------------

Coro<int> await_blocking_call(Gate& release, std::atomic<bool>& started,
                              std::atomic<bool>& finished) {
  co_return co_await weave::to_thread([&] {
    started = true;
    release.wait();
    finished = true;
    return 1;
  });
}

Coro<void> cancel_while_the_call_runs(Gate& release, std::atomic<bool>& finished) {
  std::atomic<bool> started{false};
  auto task = weave::create_task(await_blocking_call(release, started, finished));
  co_await until([&] { return started.load(); });
  task.cancel();
  try {
    co_await task;
    ADD_FAILURE() << "not cancelled";
  } catch (const weave::CancelledError&) {
  }
  EXPECT_TRUE(task.cancelled());
  EXPECT_FALSE(finished);
  release.open();  // the thread finishes after its awaiter is gone
  co_await until([&] { return finished.load(); });
  co_await weave::sleep(5ms);  // its late completion reaches the loop and is dropped
  EXPECT_EQ(co_await weave::to_thread(square, 3), 9);  // the loop and executor still work
}

Coro<void> cancel_before_the_call_starts(std::atomic<bool>& second_ran) {
  weave::EventLoop& loop = weave::get_running_loop();
  loop.set_default_executor(std::make_unique<cf::ThreadPoolExecutor>(1));
  Gate release;
  std::atomic<bool> first_started{false}, dummy{false};
  auto first = weave::create_task(await_blocking_call(release, first_started, dummy));
  co_await until([&] { return first_started.load(); });
  // The one worker is busy: the second call waits in the queue and is withdrawn.
  auto second = weave::create_task(weave::to_thread([&] { second_ran = true; }));
  co_await weave::sleep(0s);
  second.cancel();
  try {
    co_await second;
  } catch (const weave::CancelledError&) {
  }
  EXPECT_TRUE(second.cancelled());
  release.open();
  EXPECT_EQ(co_await first, 1);
}

// ---- shutdown_default_executor -----------------------------------------------------------------

Coro<void> awaited_shutdown_waits_for_running_work(std::atomic<bool>& finished) {
  weave::EventLoop& loop = weave::get_running_loop();
  Gate release;
  std::atomic<bool> started{false};
  auto task = weave::create_task(await_blocking_call(release, started, finished));
  co_await until([&] { return started.load(); });
  // The loop keeps running during an awaited shutdown: this timer opens the gate.
  loop.call_later(20ms, [&] { release.open(); });
  co_await loop.shutdown_default_executor();
  EXPECT_TRUE(finished);
  EXPECT_EQ(co_await task, 1);
}

Coro<void> blocking_shutdown_waits_for_running_work(std::atomic<bool>& finished) {
  weave::EventLoop& loop = weave::get_running_loop();
  auto call = weave::create_task(weave::to_thread([&] {
    std::this_thread::sleep_for(50ms);
    finished = true;
  }));
  co_await weave::sleep(0s);         // the call is submitted
  loop.shutdown_default_executor();  // a statement: blocks until the worker is joined
  EXPECT_TRUE(finished);
  co_await call;
}

Coro<void> leave_a_call_running(std::atomic<bool>& finished) {
  // Not awaited: run() cancels the task, and still waits for the running call's thread.
  std::atomic<bool> started{false};
  auto t = weave::create_task(weave::to_thread([&finished, &started] {
    started = true;
    std::this_thread::sleep_for(30ms);
    finished = true;
  }));
  co_await until([&] { return started.load(); });
}

Coro<void> to_thread_after_shutdown_raises() {
  weave::EventLoop& loop = weave::get_running_loop();
  co_await loop.shutdown_default_executor();  // no executor was started: harmless
  co_await loop.shutdown_default_executor();  // and again
  EXPECT_THROW(co_await weave::to_thread(square, 2), weave::RuntimeError);
  EXPECT_THROW((void)loop.run_in_executor(nullptr, square, 2), weave::RuntimeError);
}

Coro<void> to_thread_after_used_and_shut_down_raises() {
  weave::EventLoop& loop = weave::get_running_loop();
  EXPECT_EQ(co_await weave::to_thread(square, 4), 16);
  loop.shutdown_default_executor();
  EXPECT_THROW(co_await weave::to_thread(square, 2), weave::RuntimeError);
}

// ---- run_in_executor and set_default_executor --------------------------------------------------

Coro<void> run_in_a_user_thread_pool(cf::ThreadPoolExecutor& pool) {
  weave::EventLoop& loop = weave::get_running_loop();
  weave::Future<int> f = loop.run_in_executor(&pool, square, 12);
  EXPECT_EQ(co_await f, 144);
  std::string name = co_await loop.run_in_executor(&pool, thread_name);
  EXPECT_EQ(name.rfind("userpool", 0), 0u) << name;
  cf::Executor* as_base = &pool;
  EXPECT_EQ(co_await loop.run_in_executor(as_base, square, 5), 25);
  cf::Executor* none = nullptr;  // a null executor of any type means the default one
  std::string default_name = co_await loop.run_in_executor(none, thread_name);
  EXPECT_EQ(default_name.rfind("weave", 0), 0u) << default_name;
  try {
    co_await loop.run_in_executor(&pool, [] { throw CustomError(3); });
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 3);
  }
}

Coro<void> set_default_executor_is_used(cf::ThreadPoolExecutor& pool) {
  weave::get_running_loop().set_default_executor(pool);
  std::string name = co_await weave::to_thread(thread_name);
  EXPECT_EQ(name.rfind("mine", 0), 0u) << name;
}

int process_id() {
  return static_cast<int>(::getpid());
}
int fail_in_worker(int x) {
  if (x > 0) throw std::invalid_argument("bad x");
  return x;
}

Coro<void> run_in_a_process_pool(cf::ProcessPoolExecutor& pool) {
  weave::EventLoop& loop = weave::get_running_loop();
  int pid = co_await loop.run_in_executor(&pool, &process_id);
  EXPECT_NE(pid, process_id());
  EXPECT_EQ(co_await loop.run_in_executor(
                &pool, +[](int x) { return x * 3; }, 14),
            42);
  try {
    co_await loop.run_in_executor(&pool, &fail_in_worker, 1);
    ADD_FAILURE() << "no exception";
  } catch (const cf::RemoteError& e) {
    EXPECT_EQ(e.message(), "bad x");
    EXPECT_NE(e.type_name().find("invalid_argument"), std::string::npos) << e.type_name();
  }
}

Coro<void> start_and_forget(cf::ThreadPoolExecutor& pool, Gate& release,
                            std::atomic<bool>& finished) {
  weave::EventLoop& loop = weave::get_running_loop();
  // Awaited by nobody: the loop is closed and destroyed before the call completes.
  auto f = loop.run_in_executor(&pool, [&] {
    release.wait();
    finished = true;
    return 5;
  });
  co_await weave::sleep(0s);
}

}  // namespace

TEST(ToThread, ReturnsResultsFromAnotherThread) {
  run_bounded(returns_results_from_another_thread());
}

TEST(ToThread, MoveOnlyResultsAndCallablesAreMoved) {
  run_bounded(move_only_results_are_moved());
}

TEST(ToThread, ExceptionsKeepTheirType) {
  run_bounded(exceptions_keep_their_type());
}

TEST(ToThread, LoopRunsOtherTasksWhileTheCallBlocks) {
  run_bounded(loop_runs_while_the_call_blocks());
}

TEST(ToThread, ManyCallsAtOnce) {
  run_bounded(many_calls_at_once());
}

TEST(ToThread, CancellingTheAwaiterLeavesARunningCallToFinishHarmlessly) {
  Gate release;
  std::atomic<bool> finished{false};
  run_bounded(cancel_while_the_call_runs(release, finished));
  EXPECT_TRUE(finished);
}

TEST(ToThread, CancellingTheAwaiterWithdrawsACallNotStarted) {
  std::atomic<bool> second_ran{false};
  run_bounded(cancel_before_the_call_starts(second_ran));
  EXPECT_FALSE(second_ran);  // run() joined the executor: it would have run by now
}

TEST(ToThread, AfterShutdownDefaultExecutorRaisesRuntimeError) {
  run_bounded(to_thread_after_shutdown_raises());
  run_bounded(to_thread_after_used_and_shut_down_raises());
}

TEST(ShutdownDefaultExecutor, AwaitedWaitsForRunningWorkWhileTheLoopRuns) {
  std::atomic<bool> finished{false};
  run_bounded(awaited_shutdown_waits_for_running_work(finished));
  EXPECT_TRUE(finished);
}

TEST(ShutdownDefaultExecutor, AsAStatementBlocksUntilRunningWorkIsDone) {
  std::atomic<bool> finished{false};
  run_bounded(blocking_shutdown_waits_for_running_work(finished));
  EXPECT_TRUE(finished);
}

TEST(ShutdownDefaultExecutor, RunJoinsTheDefaultExecutor) {
  std::atomic<bool> finished{false};
  run_bounded(leave_a_call_running(finished));
  EXPECT_TRUE(finished);
}

TEST(RunInExecutor, UserThreadPoolAndNullForTheDefault) {
  cf::ThreadPoolExecutor pool(2, "userpool");
  run_bounded(run_in_a_user_thread_pool(pool));
}

TEST(RunInExecutor, SetDefaultExecutorIsUsedAndShutDownByRun) {
  cf::ThreadPoolExecutor pool(1, "mine");
  run_bounded(set_default_executor_is_used(pool));
  // asyncio's run() shuts the default executor down, whoever made it.
  EXPECT_THROW(pool.submit(square, 1), weave::RuntimeError);
}

TEST(RunInExecutor, ProcessPool) {
  cf::ProcessPoolExecutor pool(2);
  run_bounded(run_in_a_process_pool(pool), 30s);
}

TEST(RunInExecutor, CallFinishingAfterItsLoopIsDestroyedIsDropped) {
  cf::ThreadPoolExecutor pool(1);
  Gate release;
  std::atomic<bool> finished{false};
  {
    weave::EventLoop loop;
    loop.run_until_complete(start_and_forget(pool, release, finished));
    loop.close();
  }
  release.open();
  pool.shutdown(true);
  EXPECT_TRUE(finished);
}

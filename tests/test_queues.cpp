// asyncio.queues behaviour: FIFO/LIFO/priority order, the nowait errors, waiting getters and
// putters in FIFO order, no item or wake-up lost to a waiter cancelled as it is woken,
// task_done/join, and Python 3.13's shutdown(). Interleavings are driven by sleep(0s); a watchdog
// bounds every test.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/steps.hpp"
#include "weave/queues.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"

using namespace std::chrono_literals;

namespace {

using weave_test::yield;

std::chrono::milliseconds deadline() {
  const char* scale = std::getenv("WEAVE_TEST_TIMEOUT_SCALE");
  const double factor = scale != nullptr && std::atof(scale) > 0 ? std::atof(scale) : 1.0;
  return std::chrono::milliseconds(static_cast<long>(5000 * factor));
}

weave::Coro<void> watchdog(weave::TaskRef body, bool* fired) {
  co_await weave::sleep(deadline());
  *fired = true;
  body.cancel("watchdog");
  co_await weave::sleep(200ms);
  weave::get_running_loop().stop();  // the body ignored its cancellation
}

/// Runs `body()` as a task of a fresh loop; a body still running at the deadline fails the test.
template <class F>
void run_bounded(F body) {
  bool fired = false;
  try {
    weave::run([&]() -> weave::Coro<void> {
      auto main = weave::create_task(body());
      auto dog = weave::create_task(watchdog(main, &fired));
      co_await main;
      dog.cancel();
    }());
  } catch (const weave::CancelledError&) {
    ADD_FAILURE() << "the test body was cancelled";
  }
  EXPECT_FALSE(fired) << "the test body did not finish before its deadline";
}

weave::Coro<void> get_and_log(weave::Queue<int>& q, std::vector<int>& log) {
  log.push_back(co_await q.get());
}

weave::Coro<void> put_and_log(weave::Queue<int>& q, std::vector<int>& log, int item) {
  co_await q.put(item);
  log.push_back(item);
}

std::vector<int> drain(weave::Queue<int>& q) {
  std::vector<int> items;
  while (!q.empty()) items.push_back(q.get_nowait());
  return items;
}

}  // namespace

// ---- order and the nowait calls -----------------------------------------------------------------

TEST(Queue, NowaitCallsRespectMaxsize) {
  weave::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_THROW(q.get_nowait(), weave::QueueEmpty);
  q.put_nowait(1);
  q.put_nowait(2);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_THROW(q.put_nowait(3), weave::QueueFull);
  EXPECT_EQ(drain(q), (std::vector<int>{1, 2}));
}

TEST(Queue, MaxsizeZeroOrNegativeIsUnbounded) {
  weave::Queue<int> zero;
  weave::Queue<int> negative(-1);
  for (int i = 0; i < 1000; ++i) {
    zero.put_nowait(i);
    negative.put_nowait(i);
  }
  EXPECT_FALSE(zero.full());
  EXPECT_FALSE(negative.full());
  EXPECT_EQ(negative.maxsize(), -1);
}

TEST(LifoQueue, GetsTheLastItemFirst) {
  weave::LifoQueue<int> q;
  for (int i : {1, 2, 3}) q.put_nowait(i);
  EXPECT_EQ(drain(q), (std::vector<int>{3, 2, 1}));
}

TEST(PriorityQueue, GetsTheSmallestItemFirst) {
  weave::PriorityQueue<int> q;
  for (int i : {5, 1, 4, 2, 3, 1}) q.put_nowait(i);
  EXPECT_EQ(drain(q), (std::vector<int>{1, 1, 2, 3, 4, 5}));
}

TEST(PriorityQueue, OrdersPairsByPriorityThenValue) {
  weave::PriorityQueue<std::pair<int, std::string>> q;
  q.put_nowait({2, "b"});
  q.put_nowait({1, "z"});
  q.put_nowait({2, "a"});
  EXPECT_EQ(q.get_nowait().second, "z");
  EXPECT_EQ(q.get_nowait().second, "a");
  EXPECT_EQ(q.get_nowait().second, "b");
}

TEST(PriorityQueue, CustomCompareChoosesTheOrder) {
  weave::PriorityQueue<int, std::greater<int>> q;
  for (int i : {1, 3, 2}) q.put_nowait(i);
  EXPECT_EQ(drain(q), (std::vector<int>{3, 2, 1}));
}

TEST(Queue, HoldsMoveOnlyItems) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<std::unique_ptr<int>> q(1);
    co_await q.put(std::make_unique<int>(7));
    auto item = co_await q.get();
    EXPECT_EQ(*item, 7);
    weave::PriorityQueue<std::unique_ptr<int>, std::function<bool(const std::unique_ptr<int>&,
                                                                  const std::unique_ptr<int>&)>>
        pq(0, [](const auto& a, const auto& b) { return *a < *b; });
    pq.put_nowait(std::make_unique<int>(2));
    pq.put_nowait(std::make_unique<int>(1));
    EXPECT_EQ(*pq.get_nowait(), 1);
  });
}

// ---- waiting ------------------------------------------------------------------------------------

TEST(Queue, GettersWaitAndAreServedInFifoOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    std::vector<int> first;
    std::vector<int> second;
    auto a = weave::create_task(get_and_log(q, first));
    auto b = weave::create_task(get_and_log(q, second));
    co_await yield();
    q.put_nowait(1);
    q.put_nowait(2);
    co_await a;
    co_await b;
    EXPECT_EQ(first, (std::vector<int>{1}));
    EXPECT_EQ(second, (std::vector<int>{2}));
  });
}

TEST(Queue, PuttersWaitWhileFullInFifoOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q(1);
    std::vector<int> log;
    co_await q.put(0);
    auto a = weave::create_task(put_and_log(q, log, 1));
    auto b = weave::create_task(put_and_log(q, log, 2));
    co_await yield();
    EXPECT_TRUE(log.empty());
    EXPECT_EQ(co_await q.get(), 0);
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    co_await a;
    co_await b;
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
  });
}

TEST(Queue, PolymorphicUseThroughQueueReference) {
  run_bounded([]() -> weave::Coro<void> {
    weave::LifoQueue<int> lifo;
    weave::Queue<int>& q = lifo;
    std::vector<int> log;
    auto getter = weave::create_task(get_and_log(q, log));
    co_await yield();
    q.put_nowait(5);
    co_await getter;
    EXPECT_EQ(log, (std::vector<int>{5}));
  });
}

namespace {
/// What a generic combinator does with an awaitable: carries it into a coroutine of its own.
template <class A>
weave::Coro<void> await_elsewhere(A awaitable) {
  (void)co_await std::move(awaitable);
}
}  // namespace

TEST(Queue, AwaitersCanBeMovedIntoAnotherCoroutine) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q(1);
    co_await await_elsewhere(q.put(1));
    auto putter = weave::create_task(await_elsewhere(q.put(2)));
    co_await yield();
    co_await await_elsewhere(q.get());
    co_await putter;
    auto joiner = weave::create_task(await_elsewhere(q.join()));
    co_await await_elsewhere(q.get());
    q.task_done();
    q.task_done();
    co_await joiner;
  });
}

// ---- cancellation -------------------------------------------------------------------------------

TEST(Queue, CancelledWaitingGetterTakesNothing) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    std::vector<int> log;
    auto a = weave::create_task(get_and_log(q, log));
    co_await yield();
    a.cancel();
    co_await yield();
    EXPECT_TRUE(a.cancelled());
    q.put_nowait(1);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_TRUE(log.empty());
  });
}

TEST(Queue, CancelledGetterPassesTheItemToTheNext) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    std::vector<int> first;
    std::vector<int> second;
    auto a = weave::create_task(get_and_log(q, first));
    auto b = weave::create_task(get_and_log(q, second));
    co_await yield();
    q.put_nowait(1);  // wakes a...
    a.cancel();       // ...which is cancelled before it runs
    co_await b;
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(first.empty());
    EXPECT_EQ(second, (std::vector<int>{1}));
  });
}

TEST(Queue, CancelledGetterWithNobodyBehindLeavesTheItemQueued) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    std::vector<int> log;
    auto a = weave::create_task(get_and_log(q, log));
    co_await yield();
    q.put_nowait(1);
    a.cancel();
    co_await yield(2);
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(q.get_nowait(), 1);
  });
}

TEST(Queue, WokenGetterWhoseItemWasTakenWaitsAgain) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    std::vector<int> log;
    auto a = weave::create_task(get_and_log(q, log));
    co_await yield();
    q.put_nowait(1);               // wakes a...
    EXPECT_EQ(q.get_nowait(), 1);  // ...but the item goes to a get_nowait() first
    co_await yield(2);
    EXPECT_FALSE(a.done());
    q.put_nowait(2);
    co_await a;
    EXPECT_EQ(log, (std::vector<int>{2}));
  });
}

TEST(Queue, CancelledPutterPassesTheSlotToTheNext) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q(1);
    std::vector<int> log;
    q.put_nowait(0);
    auto a = weave::create_task(put_and_log(q, log, 1));
    auto b = weave::create_task(put_and_log(q, log, 2));
    co_await yield();
    EXPECT_EQ(q.get_nowait(), 0);  // frees a slot and wakes a...
    a.cancel();                    // ...which is cancelled before it runs
    co_await b;
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_EQ(drain(q), (std::vector<int>{2}));
  });
}

TEST(Queue, CancelledWaitingPutterAddsNothing) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q(1);
    std::vector<int> log;
    q.put_nowait(0);
    auto a = weave::create_task(put_and_log(q, log, 1));
    co_await yield();
    a.cancel();
    co_await yield();
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(drain(q), (std::vector<int>{0}));
  });
}

TEST(Queue, LoopTeardownUnlinksItsWaiters) {
  weave::Queue<int> q;
  std::vector<int> log;
  {
    weave::EventLoop loop;
    loop.run_until_complete(
        [](weave::Queue<int>& queue, std::vector<int>& out) -> weave::Coro<void> {
          weave::create_task(get_and_log(queue, out));
          weave::create_task(get_and_log(queue, out));
          co_await yield();
          // Runs in the loop's last iteration: it wakes the first getter, which never gets to run.
          weave::get_running_loop().call_soon([&queue] { queue.put_nowait(1); });
        }(q, log));
  }
  q.put_nowait(2);
  EXPECT_EQ(drain(q), (std::vector<int>{1, 2}));
  EXPECT_TRUE(log.empty());
}

// ---- task_done and join -------------------------------------------------------------------------

TEST(Queue, TaskDoneTooManyTimesRaisesValueError) {
  weave::Queue<int> q;
  EXPECT_THROW(q.task_done(), weave::ValueError);
  q.put_nowait(1);
  q.get_nowait();
  q.task_done();
  EXPECT_THROW(q.task_done(), weave::ValueError);
}

TEST(Queue, JoinWaitsUntilEveryItemIsDone) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    co_await q.join();  // nothing unfinished: returns at once
    q.put_nowait(1);
    q.put_nowait(2);
    bool joined = false;
    auto joiner = weave::create_task([](weave::Queue<int>& queue, bool& flag) -> weave::Coro<void> {
      co_await queue.join();
      flag = true;
    }(q, joined));
    co_await yield();
    q.get_nowait();
    q.task_done();
    co_await yield(2);
    EXPECT_FALSE(joined);
    q.get_nowait();
    q.task_done();
    co_await joiner;
    EXPECT_TRUE(joined);
  });
}

// ---- shutdown -----------------------------------------------------------------------------------

namespace {
weave::Coro<bool> get_raises_shutdown(weave::Queue<int>& q) {
  try {
    co_await q.get();
  } catch (const weave::QueueShutDown&) {
    co_return true;
  }
  co_return false;
}

weave::Coro<bool> put_raises_shutdown(weave::Queue<int>& q, int item) {
  try {
    co_await q.put(item);
  } catch (const weave::QueueShutDown&) {
    co_return true;
  }
  co_return false;
}
}  // namespace

TEST(Queue, ShutdownRefusesPutsAndDrainsBeforeGetsRaise) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    q.shutdown();
    EXPECT_THROW(q.put_nowait(3), weave::QueueShutDown);
    EXPECT_TRUE(co_await put_raises_shutdown(q, 3));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_THROW(q.get_nowait(), weave::QueueShutDown);
    EXPECT_TRUE(co_await get_raises_shutdown(q));
  });
}

TEST(Queue, ShutdownWakesWaitingGettersAndPutters) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> empty_q;
    weave::Queue<int> full_q(1);
    full_q.put_nowait(0);
    auto getter = weave::create_task(get_raises_shutdown(empty_q));
    auto putter = weave::create_task(put_raises_shutdown(full_q, 1));
    co_await yield();
    empty_q.shutdown();
    full_q.shutdown();
    EXPECT_TRUE(co_await getter);
    EXPECT_TRUE(co_await putter);
    EXPECT_EQ(full_q.get_nowait(), 0);  // what was queued can still be taken
  });
}

TEST(Queue, ShutdownImmediateDropsItemsAndReleasesJoin) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    q.get_nowait();  // taken but never task_done()
    q.put_nowait(3);
    auto joiner = weave::create_task(
        [](weave::Queue<int>& queue) -> weave::Coro<void> { co_await queue.join(); }(q));
    co_await yield();
    q.shutdown(true);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(joiner.done());  // the item taken earlier is still unfinished
    q.task_done();
    co_await joiner;
    EXPECT_TRUE(co_await get_raises_shutdown(q));
    EXPECT_THROW(q.task_done(), weave::ValueError);
  });
}

TEST(Queue, ShutdownImmediateMakesWaitingGettersRaise) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Queue<int> q;
    auto a = weave::create_task(get_raises_shutdown(q));
    auto b = weave::create_task(get_raises_shutdown(q));
    co_await yield();
    q.shutdown(true);
    EXPECT_TRUE(co_await a);
    EXPECT_TRUE(co_await b);
  });
}

// ---- loop binding -------------------------------------------------------------------------------

TEST(Queue, BindsToTheLoopOfItsFirstWait) {
  weave::Queue<int> q;
  auto handoff = [&]() -> weave::Coro<void> {
    std::vector<int> log;
    auto getter = weave::create_task(get_and_log(q, log));
    co_await yield();
    q.put_nowait(1);
    co_await getter;
    EXPECT_EQ(log, (std::vector<int>{1}));
  };
  run_bounded(handoff);
  EXPECT_THROW(run_bounded(handoff), weave::RuntimeError);
  // The nowait calls never wait, so they work anywhere.
  q.put_nowait(2);
  EXPECT_EQ(drain(q), (std::vector<int>{1, 2}));
}

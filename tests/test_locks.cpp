// asyncio.locks behaviour: FIFO wake order, error types, the lost-wake-up cases (a waiter
// cancelled just after it was woken hands the wake-up on), cancellation at each await point,
// Barrier rounds, loop binding. Interleavings are driven by sleep(0s), which yields exactly one
// loop iteration; no test depends on wall-clock time, and a watchdog bounds every test.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/steps.hpp"
#include "weave/locks.hpp"
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

template <class L>
weave::Coro<void> acquire_and_log(L& lock, std::vector<int>& log, int id) {
  co_await lock.acquire();
  log.push_back(id);
  lock.release();
}

weave::Coro<void> hold_for(weave::Lock& lock, int iterations) {
  co_await lock.acquire();
  co_await yield(iterations);
  lock.release();
}

}  // namespace

// ---- Lock ---------------------------------------------------------------------------------------

TEST(Lock, AcquireAndReleaseToggleLocked) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(co_await lock.acquire());
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, ReleaseWhenUnlockedRaisesRuntimeError) {
  weave::Lock lock;
  EXPECT_THROW(lock.release(), weave::RuntimeError);
}

TEST(Lock, WaitersAcquireInFifoOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    std::vector<int> log;
    co_await lock.acquire();
    auto a = weave::create_task(acquire_and_log(lock, log, 1));
    auto b = weave::create_task(acquire_and_log(lock, log, 2));
    auto c = weave::create_task(acquire_and_log(lock, log, 3));
    co_await yield();
    lock.release();
    co_await a;
    co_await b;
    co_await c;
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, ReleaseLeavesLockFreeUntilTheWokenWaiterRuns) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    std::vector<int> log;
    co_await lock.acquire();
    auto a = weave::create_task(acquire_and_log(lock, log, 1));
    co_await yield();
    lock.release();
    EXPECT_FALSE(lock.locked());  // asyncio: the waiter takes the lock when it runs
    // A newcomer does not barge in ahead of the woken waiter.
    auto b = weave::create_task(acquire_and_log(lock, log, 2));
    co_await a;
    co_await b;
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
  });
}

TEST(Lock, CancelledWaiterIsWithdrawn) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    std::vector<int> log;
    co_await lock.acquire();
    auto a = weave::create_task(acquire_and_log(lock, log, 1));
    auto b = weave::create_task(acquire_and_log(lock, log, 2));
    co_await yield();
    EXPECT_TRUE(a.cancel());
    co_await yield();
    EXPECT_TRUE(a.cancelled());
    lock.release();
    co_await b;
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, CancelledWaiterPassesWakeupToNext) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    std::vector<int> log;
    co_await lock.acquire();
    auto a = weave::create_task(acquire_and_log(lock, log, 1));
    auto b = weave::create_task(acquire_and_log(lock, log, 2));
    co_await yield();
    lock.release();  // wakes a...
    a.cancel();      // ...which is cancelled before it runs
    co_await b;
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, UncontendedAcquireIsNotACancellationPoint) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    auto self = *weave::current_task();
    self.cancel();
    co_await lock.acquire();  // does not suspend, so the cancellation waits for the next await
    EXPECT_TRUE(lock.locked());
    lock.release();
    bool raised = false;
    try {
      co_await weave::sleep(0s);
    } catch (const weave::CancelledError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    self.uncancel();
  });
}

TEST(Lock, ScopedReleasesWhenGuardIsDestroyed) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    {
      auto held = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
      EXPECT_TRUE(held.owns());
    }
    EXPECT_FALSE(lock.locked());
    try {
      auto held = co_await lock.scoped();
      throw std::logic_error("body failed");
    } catch (const std::logic_error&) {
    }
    EXPECT_FALSE(lock.locked());
    auto held = co_await lock.scoped();
    held.release();
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, ScopedWaitsForTheHolder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    auto holder = weave::create_task(hold_for(lock, 3));
    co_await yield();
    EXPECT_TRUE(lock.locked());
    auto held = co_await lock.scoped();
    EXPECT_TRUE(holder.done());
    EXPECT_TRUE(lock.locked());
  });
}

namespace {
weave::Coro<void> contend_event(weave::Event& event) {
  auto setter = weave::create_task([](weave::Event& e) -> weave::Coro<void> {
    co_await yield();
    e.set();
  }(event));
  co_await event.wait();
  co_await setter;
}
}  // namespace

TEST(Event, BindsToTheLoopOfItsFirstWait) {
  weave::Event event;
  run_bounded([&] { return contend_event(event); });
  event.clear();
  // asyncio checks the loop only when it must wait: a wait from a second loop is refused...
  EXPECT_THROW(run_bounded([&] { return contend_event(event); }), weave::RuntimeError);
  // ...but what completes without waiting still works.
  event.set();
  run_bounded([&]() -> weave::Coro<void> { co_await event.wait(); });
}

TEST(Lock, UnboundLockWorksInAnyLoopUntilItWaits) {
  weave::Lock lock;
  std::vector<int> log;
  auto contend = [&]() -> weave::Coro<void> {
    co_await lock.acquire();
    auto w = weave::create_task(acquire_and_log(lock, log, 7));
    co_await yield();
    lock.release();
    co_await w;
  };
  run_bounded([&]() -> weave::Coro<void> {
    co_await lock.acquire();
    lock.release();
  });
  run_bounded(contend);  // binds here
  EXPECT_EQ(log, (std::vector<int>{7}));
  EXPECT_THROW(run_bounded(contend), weave::RuntimeError);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, LoopTeardownUnlinksItsWaiters) {
  weave::Lock lock;
  std::vector<int> log;
  {
    weave::EventLoop loop;
    loop.run_until_complete([](weave::Lock& l, std::vector<int>& out) -> weave::Coro<void> {
      co_await l.acquire();
      weave::create_task(acquire_and_log(l, out, 1));
      co_await yield();
    }(lock, log));
  }  // the waiting task's frame goes with the loop
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(log.empty());
}

namespace {
/// What a generic combinator does with an awaitable: carries it into a coroutine of its own.
template <class A>
weave::Coro<void> await_elsewhere(A awaitable) {
  (void)co_await std::move(awaitable);  // a Held guard is released at once
}
}  // namespace

TEST(Lock, AwaitersCanBeMovedIntoAnotherCoroutine) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    weave::Event event;
    co_await await_elsewhere(lock.acquire());
    EXPECT_TRUE(lock.locked());
    auto waiter = weave::create_task(await_elsewhere(lock.scoped()));
    co_await yield();
    lock.release();
    co_await waiter;
    EXPECT_FALSE(lock.locked());
    auto event_waiter = weave::create_task(await_elsewhere(event.wait()));
    co_await yield();
    event.set();
    co_await event_waiter;
  });
}

// ---- Event --------------------------------------------------------------------------------------

namespace {
weave::Coro<void> wait_and_log(weave::Event& event, std::vector<int>& log, int id) {
  co_await event.wait();
  log.push_back(id);
}
}  // namespace

TEST(Event, WaitReturnsAtOnceWhenSet) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Event event;
    EXPECT_FALSE(event.is_set());
    event.set();
    EXPECT_TRUE(event.is_set());
    co_await event.wait();
    event.clear();
    EXPECT_FALSE(event.is_set());
  });
}

TEST(Event, SetWakesEveryWaiterInOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Event event;
    std::vector<int> log;
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(weave::create_task(wait_and_log(event, log, i)));
    co_await yield();
    EXPECT_TRUE(log.empty());
    event.set();
    for (auto& t : tasks) co_await t;
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST(Event, WaiterWokenBySetReturnsEvenIfClearedBeforeItRuns) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Event event;
    std::vector<int> log;
    auto a = weave::create_task(wait_and_log(event, log, 1));
    co_await yield();
    event.set();
    event.clear();
    co_await a;
    EXPECT_EQ(log, (std::vector<int>{1}));
  });
}

TEST(Event, CancelledWaiterLeavesTheOthersWaiting) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Event event;
    std::vector<int> log;
    auto a = weave::create_task(wait_and_log(event, log, 1));
    auto b = weave::create_task(wait_and_log(event, log, 2));
    co_await yield();
    a.cancel();
    co_await yield();
    EXPECT_TRUE(a.cancelled());
    EXPECT_FALSE(b.done());
    event.set();
    a.cancel();
    co_await b;
    EXPECT_EQ(log, (std::vector<int>{2}));
  });
}

TEST(Event, ManyWaitersAreAllWoken) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Event event;
    std::vector<int> log;
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < 10000; ++i)
      tasks.push_back(weave::create_task(wait_and_log(event, log, i)));
    co_await yield();
    event.set();
    for (auto& t : tasks) co_await t;
    std::vector<int> expected(10000);
    for (int i = 0; i < 10000; ++i) expected[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(log, expected);
  });
}

// ---- Condition ----------------------------------------------------------------------------------

namespace {
weave::Coro<void> cond_wait_and_log(weave::Condition& cond, std::vector<int>& log, int id) {
  auto held = co_await cond.scoped();
  co_await cond.wait();
  EXPECT_TRUE(cond.locked());
  log.push_back(id);
}
}  // namespace

TEST(Condition, WaitAndNotifyRequireTheLock) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Condition cond;
    bool raised = false;
    try {
      co_await cond.wait();
    } catch (const weave::RuntimeError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_THROW(cond.notify(), weave::RuntimeError);
    EXPECT_THROW(cond.notify_all(), weave::RuntimeError);
    EXPECT_THROW(cond.release(), weave::RuntimeError);
  });
}

TEST(Condition, NotifyWakesWaitersInFifoOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Condition cond;
    std::vector<int> log;
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < 4; ++i)
      tasks.push_back(weave::create_task(cond_wait_and_log(cond, log, i)));
    co_await yield();
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await tasks[0];
    EXPECT_EQ(log, (std::vector<int>{0}));
    co_await cond.acquire();
    cond.notify(2);
    cond.release();
    co_await tasks[2];
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2}));
    co_await cond.acquire();
    cond.notify_all();
    cond.release();
    co_await tasks[3];
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3}));
  });
}

TEST(Condition, CancelledWaitReacquiresTheLockBeforeRaising) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Condition cond;
    bool held_when_raised = false;
    auto waiter = weave::create_task([](weave::Condition& c, bool& held) -> weave::Coro<void> {
      co_await c.acquire();
      try {
        co_await c.wait();
      } catch (const weave::CancelledError&) {
        held = c.locked();
        c.release();
        throw;
      }
    }(cond, held_when_raised));
    co_await yield();
    co_await cond.acquire();  // the waiter must wait for this to be released
    waiter.cancel();
    co_await yield(3);
    EXPECT_FALSE(waiter.done());
    waiter.cancel();  // a second cancellation while it re-acquires is deferred, not lost
    co_await yield(3);
    EXPECT_FALSE(waiter.done());
    cond.release();
    try {
      co_await waiter;
    } catch (const weave::CancelledError&) {
    }
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(held_when_raised);
    EXPECT_FALSE(cond.locked());
  });
}

TEST(Condition, CancelledAfterNotifyPassesTheNotificationOn) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Condition cond;
    std::vector<int> log;
    auto a = weave::create_task(cond_wait_and_log(cond, log, 1));
    auto b = weave::create_task(cond_wait_and_log(cond, log, 2));
    co_await yield();
    co_await cond.acquire();
    cond.notify(1);  // wakes a...
    a.cancel();      // ...which is cancelled before it runs
    cond.release();
    co_await b;
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(log, (std::vector<int>{2}));
  });
}

TEST(Condition, WaitForReturnsThePredicateResult) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Condition cond;
    int value = 0;
    auto waiter = weave::create_task([](weave::Condition& c, int& v) -> weave::Coro<int> {
      auto held = co_await c.scoped();
      co_return co_await c.wait_for([&v] { return v >= 3 ? v : 0; });
    }(cond, value));
    for (int i = 1; i <= 3; ++i) {
      co_await yield();
      auto held = co_await cond.scoped();
      value = i;
      cond.notify_all();
    }
    EXPECT_EQ(co_await waiter, 3);
  });
}

TEST(Condition, UsesTheLockItIsGiven) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Lock lock;
    weave::Condition cond(lock);
    co_await lock.acquire();
    EXPECT_TRUE(cond.locked());
    cond.release();
    EXPECT_FALSE(lock.locked());
  });
}

// ---- Semaphore ----------------------------------------------------------------------------------

TEST(Semaphore, NegativeValueRaisesValueError) {
  EXPECT_THROW(weave::Semaphore(-1), weave::ValueError);
  EXPECT_THROW(weave::BoundedSemaphore(-1), weave::ValueError);
}

TEST(Semaphore, AcquireTakesSlotsUntilLocked) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(2);
    EXPECT_FALSE(sem.locked());
    EXPECT_TRUE(co_await sem.acquire());
    EXPECT_FALSE(sem.locked());
    co_await sem.acquire();
    EXPECT_TRUE(sem.locked());
    sem.release();
    sem.release();
    sem.release();  // a plain Semaphore may grow
    EXPECT_FALSE(sem.locked());
  });
}

TEST(Semaphore, WaitersAcquireInFifoOrder) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(0);
    std::vector<int> log;
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < 4; ++i) tasks.push_back(weave::create_task(acquire_and_log(sem, log, i)));
    co_await yield();
    sem.release();
    for (auto& t : tasks) co_await t;
    EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3}));
  });
}

TEST(Semaphore, NewcomerQueuesBehindWaitersEvenWithAFreeSlot) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(0);
    std::vector<int> log;
    auto a = weave::create_task(acquire_and_log(sem, log, 1));
    co_await yield();
    sem.release();
    EXPECT_TRUE(sem.locked());  // the slot is promised to the woken waiter
    auto b = weave::create_task(acquire_and_log(sem, log, 2));
    co_await a;
    co_await b;
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
  });
}

TEST(Semaphore, CancelledWaiterPassesWakeupToNext) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(0);
    std::vector<int> log;
    auto a = weave::create_task(acquire_and_log(sem, log, 1));
    auto b = weave::create_task(acquire_and_log(sem, log, 2));
    co_await yield();
    sem.release();  // wakes a...
    a.cancel();     // ...which is cancelled before it runs
    co_await b;
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_FALSE(sem.locked());
  });
}

TEST(Semaphore, CancelledWaiterWithNobodyBehindGivesTheSlotBack) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(0);
    std::vector<int> log;
    auto a = weave::create_task(acquire_and_log(sem, log, 1));
    co_await yield();
    sem.release();
    a.cancel();
    co_await yield(2);
    EXPECT_TRUE(a.cancelled());
    EXPECT_FALSE(sem.locked());
    co_await sem.acquire();
    EXPECT_TRUE(sem.locked());
  });
}

TEST(Semaphore, ScopedReleasesTheSlot) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Semaphore sem(1);
    {
      auto held = co_await sem.scoped();
      EXPECT_TRUE(sem.locked());
    }
    EXPECT_FALSE(sem.locked());
  });
}

TEST(Semaphore, LoopTeardownUnlinksAWokenWaiter) {
  weave::Semaphore sem(0);
  std::vector<int> log;
  {
    weave::EventLoop loop;
    loop.run_until_complete([](weave::Semaphore& s, std::vector<int>& out) -> weave::Coro<void> {
      weave::create_task(acquire_and_log(s, out, 1));
      co_await yield();
      // Runs in the loop's last iteration: it wakes the waiter, which never gets to run.
      weave::get_running_loop().call_soon([&s] { s.release(); });
    }(sem, log));
  }
  EXPECT_TRUE(log.empty());
  EXPECT_TRUE(sem.locked());  // the slot went with the loop
  sem.release();
  EXPECT_FALSE(sem.locked());
}

TEST(BoundedSemaphore, ReleasePastTheInitialValueRaisesValueError) {
  run_bounded([]() -> weave::Coro<void> {
    weave::BoundedSemaphore sem(1);
    EXPECT_THROW(sem.release(), weave::ValueError);
    {
      auto held = co_await sem.scoped();
      EXPECT_TRUE(sem.locked());
    }
    co_await sem.acquire();
    sem.release();
    EXPECT_THROW(sem.release(), weave::ValueError);
  });
}

// ---- Barrier ------------------------------------------------------------------------------------

namespace {
weave::Coro<int> barrier_wait(weave::Barrier& barrier) {
  co_return co_await barrier.wait();
}
}  // namespace

TEST(Barrier, PartiesBelowOneRaiseValueError) {
  EXPECT_THROW(weave::Barrier(0), weave::ValueError);
  weave::Barrier b(3);
  EXPECT_EQ(b.parties(), 3);
  EXPECT_EQ(b.n_waiting(), 0);
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, ReleasesAllPartiesWithDistinctIndices) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Barrier barrier(3);
    for (int round = 0; round < 2; ++round) {
      auto a = weave::create_task(barrier_wait(barrier));
      auto b = weave::create_task(barrier_wait(barrier));
      co_await yield(3);
      EXPECT_EQ(barrier.n_waiting(), 2);
      EXPECT_FALSE(a.done());
      int c = co_await barrier.wait();
      // (Each co_await in its own statement: g++ 12 miscompiles co_await in braced lists.)
      int ia = co_await a;
      int ib = co_await b;
      std::vector<int> indices{ia, ib, c};
      EXPECT_EQ(indices, (std::vector<int>{0, 1, 2}));
      EXPECT_EQ(barrier.n_waiting(), 0);
    }
  });
}

TEST(Barrier, AbortBreaksWaitersAndLaterWaits) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Barrier barrier(3);
    auto a = weave::create_task(barrier_wait(barrier));
    co_await yield(3);
    co_await barrier.abort();
    EXPECT_TRUE(barrier.broken());
    EXPECT_THROW(co_await a, weave::BrokenBarrierError);
    bool raised = false;
    try {
      co_await barrier.wait();
    } catch (const weave::BrokenBarrierError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    co_await barrier.reset();
    EXPECT_FALSE(barrier.broken());
  });
}

TEST(Barrier, ResetBreaksCurrentWaitersAndReopens) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Barrier barrier(2);
    auto a = weave::create_task(barrier_wait(barrier));
    co_await yield(3);
    EXPECT_EQ(barrier.n_waiting(), 1);
    co_await barrier.reset();
    EXPECT_THROW(co_await a, weave::BrokenBarrierError);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(barrier.n_waiting(), 0);
    auto b = weave::create_task(barrier_wait(barrier));
    int mine = co_await barrier.wait();
    EXPECT_EQ(mine + co_await b, 1);
  });
}

TEST(Barrier, CancelledWaiterNoLongerCounts) {
  run_bounded([]() -> weave::Coro<void> {
    weave::Barrier barrier(2);
    auto a = weave::create_task(barrier_wait(barrier));
    co_await yield(3);
    EXPECT_EQ(barrier.n_waiting(), 1);
    a.cancel();
    co_await yield(3);
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
    auto b = weave::create_task(barrier_wait(barrier));
    int mine = co_await barrier.wait();
    EXPECT_EQ(mine + co_await b, 1);
  });
}

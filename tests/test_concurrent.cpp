// weave::concurrent in one process: Future, ThreadPoolExecutor, wait, as_completed.
// Every blocking call carries a deadline (scaled by WEAVE_TEST_TIMEOUT_SCALE under sanitizers),
// so a bug fails a test instead of hanging the suite.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <memory>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weave/concurrent.hpp"

using namespace std::chrono_literals;
namespace cf = weave::concurrent;

namespace {

std::chrono::milliseconds scaled(std::chrono::milliseconds d) {
  const char* scale = std::getenv("WEAVE_TEST_TIMEOUT_SCALE");
  return d * (scale ? std::max(1, std::atoi(scale)) : 1);
}

const auto kLong = scaled(10s);  // "never" for a test: only reached when something is broken

/// A gate a test opens to let blocked calls go on; waits are bounded.
class Gate {
 public:
  void open() { latch_.count_down(); }
  void wait() const {
    auto deadline = std::chrono::steady_clock::now() + kLong;
    while (!latch_.try_wait()) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("gate timeout");
      std::this_thread::sleep_for(1ms);
    }
  }

 private:
  mutable std::latch latch_{1};
};

int square(int x) {
  return x * x;
}

}  // namespace

TEST(Future, SetResultIsSeenByResult) {
  cf::Future<int> f;
  EXPECT_FALSE(f.done());
  f.set_result(42);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(0s), 42);
  EXPECT_EQ(f.exception(0s), nullptr);
}

TEST(Future, VoidFutureCompletes) {
  cf::Future<void> f;
  f.set_result();
  EXPECT_NO_THROW(f.result(0s));
  EXPECT_TRUE(f.done());
}

TEST(Future, ResultTimesOutWhilePending) {
  cf::Future<int> f;
  EXPECT_THROW(f.result(10ms), weave::TimeoutError);
  EXPECT_THROW(f.exception(0s), weave::TimeoutError);
}

TEST(Future, SetExceptionIsRethrownByResult) {
  cf::Future<int> f;
  f.set_exception(std::make_exception_ptr(std::logic_error("boom")));
  EXPECT_THROW(f.result(0s), std::logic_error);
  EXPECT_NE(f.exception(0s), nullptr);
}

TEST(Future, SecondCompletionThrowsInvalidState) {
  cf::Future<int> f;
  f.set_result(1);
  EXPECT_THROW(f.set_result(2), weave::InvalidStateError);
  EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               weave::InvalidStateError);
  EXPECT_EQ(f.result(0s), 1);
}

TEST(Future, CancelSucceedsOnlyWhilePending) {
  cf::Future<int> pending;
  EXPECT_TRUE(pending.cancel());
  EXPECT_TRUE(pending.cancel());
  EXPECT_TRUE(pending.cancelled());
  EXPECT_TRUE(pending.done());
  EXPECT_THROW(pending.result(0s), weave::CancelledError);
  EXPECT_THROW(pending.exception(0s), weave::CancelledError);
  EXPECT_FALSE(pending.set_running_or_notify_cancel());

  cf::Future<int> running;
  EXPECT_TRUE(running.set_running_or_notify_cancel());
  EXPECT_TRUE(running.running());
  EXPECT_FALSE(running.cancel());
  EXPECT_THROW(running.set_running_or_notify_cancel(), weave::RuntimeError);
  running.set_result(3);
  EXPECT_FALSE(running.cancel());
  EXPECT_EQ(running.result(0s), 3);
}

TEST(Future, CallbackOnDoneFutureRunsAtOnceInCaller) {
  cf::Future<int> f;
  f.set_result(5);
  std::thread::id ran_on;
  int seen = 0;
  f.add_done_callback([&](const cf::Future<int>& g) {
    ran_on = std::this_thread::get_id();
    seen = g.result(0s);
  });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(seen, 5);
}

TEST(Future, CallbackRunsInCompletingThread) {
  cf::Future<int> f;
  std::thread::id ran_on;
  std::atomic<int> calls{0};
  f.add_done_callback([&](cf::Future<int>) {
    ran_on = std::this_thread::get_id();
    ++calls;
  });
  f.add_done_callback([&] { ++calls; });
  std::thread completer([f] { f.set_result(1); });
  std::thread::id completer_id = completer.get_id();
  completer.join();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(ran_on, completer_id);
}

TEST(Future, CallbackRunsOnCancelAndThrowingCallbackIsContained) {
  cf::Future<int> f;
  bool second = false;
  f.add_done_callback([] { throw std::runtime_error("bad callback"); });
  f.add_done_callback([&](const cf::Future<int>& g) { second = g.cancelled(); });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(second);
}

TEST(Future, CallbackAddedWhileCompletingRunsExactlyOnce) {
  for (int round = 0; round < 200; ++round) {
    cf::Future<int> f;
    std::atomic<int> calls{0};
    std::thread completer([f] { f.set_result(7); });
    f.add_done_callback([&] { ++calls; });
    completer.join();
    EXPECT_EQ(calls, 1);
  }
}

TEST(Future, ResultCrossesThreads) {
  cf::Future<std::string> f;
  std::thread t([f] {
    std::this_thread::sleep_for(5ms);
    f.set_result("from another thread");
  });
  EXPECT_EQ(f.result(kLong), "from another thread");
  t.join();
}

TEST(Future, MoveOnlyResultIsMovedOutOfTemporary) {
  cf::Future<std::unique_ptr<int>> f;
  f.set_result(std::make_unique<int>(9));
  EXPECT_EQ(*f.result(0s), 9);
  std::unique_ptr<int> taken = cf::Future<std::unique_ptr<int>>(f).result(0s);
  EXPECT_EQ(*taken, 9);
}

TEST(Future, HandlesCompareByIdentityAndHash) {
  cf::Future<int> a;
  cf::Future<int> b = a;
  cf::Future<int> c;
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_EQ(std::hash<cf::Future<int>>()(a), std::hash<cf::Future<int>>()(b));
}

TEST(ThreadPoolExecutor, SubmitReturnsResult) {
  cf::ThreadPoolExecutor pool(2);
  auto f = pool.submit(square, 7);
  EXPECT_EQ(f.result(kLong), 49);
  auto g = pool.submit([](const std::string& a, int n) { return a + std::to_string(n); },
                       std::string("n="), 3);
  EXPECT_EQ(g.result(kLong), "n=3");
}

TEST(ThreadPoolExecutor, VoidCallCompletes) {
  cf::ThreadPoolExecutor pool(1);
  std::atomic<bool> ran{false};
  cf::Future<void> f = pool.submit([&] { ran = true; });
  f.result(kLong);
  EXPECT_TRUE(ran);
}

TEST(ThreadPoolExecutor, ExceptionIsCapturedInFuture) {
  cf::ThreadPoolExecutor pool(1);
  auto f = pool.submit([]() -> int { throw std::out_of_range("nope"); });
  EXPECT_THROW(f.result(kLong), std::out_of_range);
  auto c = pool.submit([] { throw weave::CancelledError("inner"); });
  EXPECT_NE(c.exception(kLong), nullptr);
  EXPECT_FALSE(c.cancelled());
}

TEST(ThreadPoolExecutor, DefaultMaxWorkersFollowsPython) {
  cf::ThreadPoolExecutor pool;
  EXPECT_GE(pool.max_workers(), 5);
  EXPECT_LE(pool.max_workers(), 32);
  EXPECT_THROW(cf::ThreadPoolExecutor(-1), weave::ValueError);
}

TEST(ThreadPoolExecutor, RunsAtMostMaxWorkersAtOnce) {
  cf::ThreadPoolExecutor pool(3);
  std::atomic<int> now{0}, peak{0};
  std::vector<cf::Future<void>> fs;
  for (int i = 0; i < 30; ++i) {
    fs.push_back(pool.submit([&] {
      int n = ++now;
      int p = peak.load();
      while (n > p && !peak.compare_exchange_weak(p, n)) {
      }
      std::this_thread::sleep_for(1ms);
      --now;
    }));
  }
  for (auto& f : fs) f.result(kLong);
  EXPECT_LE(peak, 3);
  EXPECT_GE(peak, 1);
}

TEST(ThreadPoolExecutor, ThreadNamesUsePrefix) {
  cf::ThreadPoolExecutor pool(1, "weavetest");
  auto name = pool.submit([] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    return std::string(buf);
  });
  EXPECT_EQ(name.result(kLong), "weavetest_0");
}

TEST(ThreadPoolExecutor, InitializerRunsInEveryWorker) {
  std::atomic<int> inits{0};
  {
    cf::ThreadPoolExecutor pool(2, {}, [&] { ++inits; });
    Gate gate;
    auto a = pool.submit([&] { gate.wait(); });
    auto b = pool.submit([&] { gate.wait(); });
    gate.open();
    a.result(kLong);
    b.result(kLong);
  }
  EXPECT_EQ(inits, 2);
}

TEST(ThreadPoolExecutor, FailingInitializerBreaksPool) {
  cf::ThreadPoolExecutor pool(1, {}, [] { throw std::runtime_error("init failed"); });
  auto f = pool.submit(square, 2);
  EXPECT_THROW(f.result(kLong), cf::BrokenThreadPool);
  EXPECT_THROW(pool.submit(square, 3), weave::BrokenExecutor);
}

TEST(ThreadPoolExecutor, SubmitAfterShutdownThrowsRuntimeError) {
  cf::ThreadPoolExecutor pool(1);
  pool.shutdown();
  EXPECT_THROW(pool.submit(square, 1), weave::RuntimeError);
  pool.shutdown();  // idempotent
}

TEST(ThreadPoolExecutor, ShutdownWithoutWaitStillRunsQueuedCalls) {
  std::atomic<int> ran{0};
  std::vector<cf::Future<void>> fs;
  {
    cf::ThreadPoolExecutor pool(1);
    Gate gate;
    fs.push_back(pool.submit([&] {
      gate.wait();
      ++ran;
    }));
    for (int i = 0; i < 5; ++i) fs.push_back(pool.submit([&] { ++ran; }));
    pool.shutdown(false);
    gate.open();
  }
  EXPECT_EQ(ran, 6);
  for (auto& f : fs) EXPECT_TRUE(f.done());
}

TEST(ThreadPoolExecutor, ShutdownCancelFuturesCancelsOnlyQueuedCalls) {
  cf::ThreadPoolExecutor pool(1);
  Gate started, gate;
  auto running = pool.submit([&] {
    started.open();
    gate.wait();
    return 1;
  });
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(square, i));
  started.wait();
  EXPECT_TRUE(running.running());
  EXPECT_FALSE(running.cancel());
  std::thread opener([&] {
    std::this_thread::sleep_for(10ms);
    gate.open();
  });
  pool.shutdown(true, true);
  opener.join();
  EXPECT_EQ(running.result(0s), 1);
  for (auto& f : queued) {
    EXPECT_TRUE(f.cancelled());
    EXPECT_THROW(f.result(0s), weave::CancelledError);
  }
}

TEST(ThreadPoolExecutor, CancelBeforeStartSkipsTheCall) {
  cf::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&] { gate.wait(); });
  std::atomic<bool> ran{false};
  auto victim = pool.submit([&] { ran = true; });
  EXPECT_TRUE(victim.cancel());
  gate.open();
  blocker.result(kLong);
  pool.shutdown();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(victim.cancelled());
}

TEST(ThreadPoolExecutor, ConcurrentSubmitAndShutdownLoseNothing) {
  for (int round = 0; round < 20; ++round) {
    cf::ThreadPoolExecutor pool(2);
    std::vector<cf::Future<int>> fs[2];
    std::thread submitters[2];
    for (int t = 0; t < 2; ++t) {
      submitters[t] = std::thread([&, t] {
        try {
          for (int i = 0; i < 200; ++i) fs[t].push_back(pool.submit(square, i));
        } catch (const weave::RuntimeError&) {
          // shut down under our feet: what was accepted must still complete
        }
      });
    }
    pool.shutdown(true, round % 2 == 1);
    for (auto& s : submitters) s.join();
    for (auto& list : fs) {
      for (auto& f : list) {
        ASSERT_TRUE(f.done());
        if (!f.cancelled()) {
          EXPECT_GE(f.result(0s), 0);
        }
      }
    }
  }
}

TEST(ThreadPoolExecutor, CallbackSeesResultFromWorker) {
  cf::ThreadPoolExecutor pool(1);
  cf::Future<int> relay;
  pool.submit(square, 6).add_done_callback(
      [relay](const cf::Future<int>& f) { relay.set_result(f.result(0s) + 1); });
  EXPECT_EQ(relay.result(kLong), 37);
}

TEST(ThreadPoolExecutor, ThroughExecutorBaseClass) {
  std::unique_ptr<cf::Executor> ex = std::make_unique<cf::ThreadPoolExecutor>(2);
  EXPECT_EQ(ex->submit(square, 4).result(kLong), 16);
  ex->shutdown();
}

/// Every result of a MapResults, in order (Python's list(executor.map(...))).
template <class T>
std::vector<T> drain(cf::MapResults<T>&& results) {
  std::vector<T> out;
  for (auto& r : results) out.push_back(std::move(r));
  return out;
}

TEST(ThreadPoolExecutor, MapKeepsInputOrder) {
  cf::ThreadPoolExecutor pool(4);
  std::vector<int> in;
  for (int i = 0; i < 100; ++i) in.push_back(i);
  auto out = pool.map(
      [](int x) {
        std::this_thread::sleep_for(std::chrono::microseconds((100 - x) % 7 * 50));
        return x * 2;
      },
      in, kLong, 8);
  std::vector<int> got = drain(std::move(out));
  ASSERT_EQ(got.size(), in.size());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], 2 * i);
}

TEST(ThreadPoolExecutor, MapRethrowsFirstErrorAndCancelsRest) {
  cf::ThreadPoolExecutor pool(1);
  std::atomic<int> ran{0};
  Gate gate;  // holds the single worker on item 2 until map has given up: no timing involved
  std::vector<int> in{0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_THROW(drain(pool.map(
                   [&](int x) {
                     ++ran;
                     if (x == 1) throw std::domain_error("one");
                     if (x == 2) gate.wait();
                     return x;
                   },
                   in, kLong)),
               std::domain_error);
  gate.open();
  pool.shutdown();
  EXPECT_LE(ran, 3);  // 0, 1 and maybe 2 ran; 3..7 were cancelled before they started
}

TEST(ThreadPoolExecutor, MapTimesOut) {
  cf::ThreadPoolExecutor pool(1);
  Gate gate;
  std::vector<int> in{1, 2, 3};
  EXPECT_THROW(drain(pool.map(
                   [&](int x) {
                     gate.wait();
                     return x;
                   },
                   in, 20ms)),
               weave::TimeoutError);
  gate.open();
}

TEST(ThreadPoolExecutor, MapIsLazyWithBuffersize) {
  cf::ThreadPoolExecutor pool(4);
  std::atomic<int> read{0};  // items taken from the range, i.e. calls submitted
  auto counted = std::views::iota(0, 1000) | std::views::transform([&](int i) {
                   ++read;
                   return i;
                 });
  std::optional<std::size_t> buffersize = 2;
  auto results = pool.map([](int x) { return x * 3; }, counted, kLong, 1, buffersize);
  EXPECT_EQ(read, 2);  // submitted ahead: buffersize
  EXPECT_EQ(results.next(), 0);
  EXPECT_EQ(read, 3);  // one more each time a result is taken
  EXPECT_EQ(results.next(), 3);
  EXPECT_EQ(results.next(), 6);
  EXPECT_EQ(read, 5);
  // Without buffersize, every call is submitted at once, as Python does.
  read = 0;
  auto all = pool.map([](int x) { return x; }, counted);
  EXPECT_EQ(read, 1000);
  EXPECT_EQ(drain(std::move(all)).back(), 999);
  std::optional<std::size_t> zero = 0;
  EXPECT_THROW(pool.map([](int x) { return x; }, counted, kLong, 1, zero), weave::ValueError);
}

TEST(ThreadPoolExecutor, MapZipsSeveralRangesToTheShortest) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<int> a{1, 2, 3, 4};
  std::vector<std::string> b{"x", "yy"};
  auto results = pool.map([](int n, const std::string& s) { return s + std::to_string(n); }, a, b);
  EXPECT_EQ(drain(std::move(results)), (std::vector<std::string>{"x1", "yy2"}));
  cf::MapOptions opts{.timeout = kLong, .buffersize = 1};
  std::vector<int> c{10, 20, 30};
  auto sums = pool.map([](int x, int y, int z) { return x + y + z; }, opts, a, c, a);
  EXPECT_EQ(drain(std::move(sums)), (std::vector<int>{12, 24, 36}));
  // A void function yields one std::monostate per call.
  std::atomic<int> calls{0};
  auto voids = pool.map([&](int) { ++calls; }, a);
  EXPECT_EQ(drain(std::move(voids)).size(), 4U);
  EXPECT_EQ(calls, 4);
}

TEST(ThreadPoolExecutor, MapYieldsTheResultsBeforeAFailure) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<int> in{0, 1, 2, 3, 4, 5};
  auto results = pool.map(
      [](int x) {
        if (x == 3) throw std::domain_error("three");
        return x * 10;
      },
      in);
  std::vector<int> got;
  bool raised = false;
  try {
    for (int r : results) got.push_back(r);
  } catch (const std::domain_error& e) {
    raised = true;
    EXPECT_STREQ(e.what(), "three");
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(got, (std::vector<int>{0, 10, 20}));
  EXPECT_EQ(results.next(), std::nullopt);  // over after the error
}

TEST(ThreadPoolExecutor, MapTimeoutCountsFromTheCall) {
  cf::ThreadPoolExecutor pool(1);
  Gate gate;
  std::vector<int> in{1, 2, 3};
  auto results = pool.map(
      [&](int x) {
        if (x == 2) gate.wait();
        return x;
      },
      in, 30ms);
  EXPECT_EQ(results.next(), 1);
  EXPECT_THROW(results.next(), weave::TimeoutError);
  EXPECT_EQ(results.next(), std::nullopt);
  gate.open();
}

TEST(ThreadPoolExecutor, DestroyingMapResultsCancelsTheRest) {
  cf::ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  std::vector<int> in{0, 1, 2, 3, 4, 5, 6, 7};
  {
    auto results = pool.map(
        [&](int x) {
          ++ran;
          if (x == 0) gate.wait();
          return x;
        },
        in);
    const auto deadline = std::chrono::steady_clock::now() + kLong;
    while (ran == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
  }
  gate.open();
  pool.shutdown();
  EXPECT_EQ(ran, 1);  // only the call already running when the results went
}

TEST(Wait, AllCompletedReturnsEverything) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(pool.submit(square, i));
  auto [done, not_done] = cf::wait(fs, kLong);
  EXPECT_EQ(done.size(), 10U);
  EXPECT_TRUE(not_done.empty());
}

TEST(Wait, FirstCompletedReturnsEarly) {
  cf::ThreadPoolExecutor pool(2);
  Gate gate;
  auto slow = pool.submit([&] {
    gate.wait();
    return 0;
  });
  auto fast = pool.submit(square, 3);
  auto r = cf::wait(std::vector{slow, fast}, kLong, cf::ReturnWhen::FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1U);
  EXPECT_TRUE(r.done[0] == fast);
  ASSERT_EQ(r.not_done.size(), 1U);
  EXPECT_TRUE(r.not_done[0] == slow);
  gate.open();
}

TEST(Wait, FirstExceptionStopsAtFailure) {
  cf::ThreadPoolExecutor pool(2);
  Gate gate;
  auto slow = pool.submit([&] {
    gate.wait();
    return 0;
  });
  auto bad = pool.submit([]() -> int { throw std::runtime_error("x"); });
  auto r = cf::wait(std::vector{slow, bad}, kLong, cf::ReturnWhen::FIRST_EXCEPTION);
  ASSERT_EQ(r.done.size(), 1U);
  EXPECT_TRUE(r.done[0] == bad);
  gate.open();
  // With no exception at all, FIRST_EXCEPTION waits for everything.
  auto all = cf::wait(std::vector{pool.submit(square, 1), pool.submit(square, 2)}, kLong,
                      cf::FIRST_EXCEPTION);
  EXPECT_EQ(all.done.size(), 2U);
}

TEST(Wait, TimeoutReturnsPartialAnswer) {
  cf::Future<int> never;
  cf::Future<int> done;
  done.set_result(1);
  auto r = cf::wait(std::vector{never, done, done}, 10ms);
  EXPECT_EQ(r.done.size(), 1U);
  EXPECT_EQ(r.not_done.size(), 1U);
}

TEST(Wait, CancelledCountsAsDone) {
  cf::Future<int> f;
  std::thread t([f] {
    std::this_thread::sleep_for(5ms);
    f.cancel();
  });
  auto r = cf::wait(std::vector{f}, kLong);
  t.join();
  EXPECT_EQ(r.done.size(), 1U);
}

TEST(AsCompleted, YieldsInCompletionOrder) {
  std::vector<cf::Future<int>> fs(3);
  fs[1].set_result(1);
  std::thread t([fs] {
    std::this_thread::sleep_for(5ms);
    fs[2].set_result(2);
    std::this_thread::sleep_for(5ms);
    fs[0].set_result(0);
  });
  std::vector<int> order;
  for (const auto& f : cf::as_completed(fs, kLong)) order.push_back(f.result(0s));
  t.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 0}));
}

TEST(AsCompleted, ThrowsTimeoutWhenFuturesRemain) {
  std::vector<cf::Future<int>> fs(2);
  fs[0].set_result(0);
  auto it = cf::as_completed(fs, 10ms);
  int seen = 0;
  EXPECT_THROW(
      {
        for (const auto& f : it) seen += f.done() ? 1 : 0;
      },
      weave::TimeoutError);
  EXPECT_EQ(seen, 1);
}

TEST(AsCompleted, TenThousandFuturesFromPool) {
  cf::ThreadPoolExecutor pool(2);
  Gate gate;
  std::vector<cf::Future<int>> fs;
  fs.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    fs.push_back(pool.submit([i, &gate] {
      if (i < 2) gate.wait();
      return i;
    }));
  }
  auto completed = cf::as_completed(fs, kLong * 3);  // attaches to (mostly) pending futures
  gate.open();
  long long sum = 0;
  std::size_t count = 0;
  for (const auto& f : completed) {
    sum += f.result(0s);
    ++count;
  }
  EXPECT_EQ(count, 10000U);
  EXPECT_EQ(sum, 9999LL * 10000 / 2);
}

TEST(AsCompleted, DuplicatesYieldOnce) {
  cf::Future<int> f;
  f.set_result(1);
  int n = 0;
  for (const auto& g : cf::as_completed(std::vector{f, f, f}, kLong)) n += g.result(0s);
  EXPECT_EQ(n, 1);
}

// EventLoop::call_soon_threadsafe, the one member other threads may call: it wakes a loop blocked
// in its poller, keeps each thread's order, takes move-only callables, and refuses a closed loop.
// Runs on both backends (ctest sets WEAVE_BACKEND) and under ThreadSanitizer.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "support/bounded.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

/// Posts `fn` to `loop` from a new thread after `delay`; joined by the destructor.
class LatePoster {
 public:
  template <class F>
  LatePoster(weave::EventLoop& loop, std::chrono::milliseconds delay, F fn)
      : thread_([&loop, delay, fn = std::move(fn)]() mutable {
          std::this_thread::sleep_for(delay);
          loop.call_soon_threadsafe(std::move(fn));
        }) {}
  ~LatePoster() { thread_.join(); }

 private:
  std::thread thread_;
};

// The loop has nothing to do but a 60 s timer, so its poller blocks for that long unless the
// post wakes it. The bound of run_bounded fails the test long before the timer would fire.
weave::Coro<double> wake_latency_ms() {
  weave::EventLoop& loop = weave::get_running_loop();
  auto woken = loop.create_future<weave::Clock::time_point>();
  auto sleeper = weave::create_task(weave::sleep(60s));
  {
    LatePoster poster(loop, 50ms, [&] { woken.set_result(weave::Clock::now()); });
    auto t0 = weave::Clock::now();
    weave::Clock::time_point at = co_await woken;
    sleeper.cancel();
    // The poster slept 50 ms before posting: what is beyond that is the wakeup latency (plus
    // scheduling noise).
    co_return std::chrono::duration<double, std::milli>(at - t0).count() - 50.0;
  }
}

struct Seen {
  int thread;
  int seq;
};

weave::Coro<void> collect_from_threads(int threads, int per_thread, std::vector<Seen>& seen) {
  weave::EventLoop& loop = weave::get_running_loop();
  auto all_in = loop.create_future<void>();
  const std::size_t total = static_cast<std::size_t>(threads) * per_thread;
  std::vector<std::thread> posters;
  for (int t = 0; t < threads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        loop.call_soon_threadsafe([&, t, i] {
          seen.push_back({t, i});  // the loop thread only: no lock
          if (seen.size() == total) all_in.set_result();
        });
      }
    });
  }
  co_await all_in;
  for (std::thread& p : posters) p.join();
}

weave::Coro<int> move_only_callable() {
  weave::EventLoop& loop = weave::get_running_loop();
  auto got = loop.create_future<int>();
  auto value = std::make_unique<int>(7);
  std::thread poster(
      [&] { loop.call_soon_threadsafe([&got, v = std::move(value)] { got.set_result(*v * 6); }); });
  int r = co_await got;
  poster.join();
  co_return r;
}

weave::Coro<std::vector<int>> posted_from_the_loop_thread_run_next_iteration() {
  weave::EventLoop& loop = weave::get_running_loop();
  std::vector<int> order;
  loop.call_soon([&] {
    order.push_back(1);
    loop.call_soon_threadsafe([&] { order.push_back(3); });
  });
  loop.call_soon([&] { order.push_back(2); });
  co_await weave::sleep(0s);
  co_await weave::sleep(0s);
  co_await weave::sleep(0s);
  co_return order;
}

}  // namespace

TEST(CallSoonThreadsafe, WakesALoopBlockedInItsPollerAtOnce) {
  double extra_ms = run_bounded(wake_latency_ms(), 5s);
  // Generous: the point is "not after the 60 s poll timeout"; a wakeup takes microseconds.
  EXPECT_LT(extra_ms, 1000.0);
}

TEST(CallSoonThreadsafe, KeepsEachThreadsOrderAndLosesNothing) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<Seen> seen;
  run_bounded(collect_from_threads(kThreads, kPerThread, seen), 30s);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (const Seen& s : seen) {
    ASSERT_EQ(s.seq, next[s.thread]) << "thread " << s.thread;
    ++next[s.thread];
  }
}

TEST(CallSoonThreadsafe, TakesMoveOnlyCallables) {
  EXPECT_EQ(run_bounded(move_only_callable()), 42);
}

TEST(CallSoonThreadsafe, PostedFromTheLoopThreadRunsInTheNextIteration) {
  EXPECT_EQ(run_bounded(posted_from_the_loop_thread_run_next_iteration()),
            (std::vector<int>{1, 2, 3}));
}

TEST(CallSoonThreadsafe, PostedBeforeTheLoopRunsRunOnItsFirstIteration) {
  weave::EventLoop loop;
  int ran = 0;
  std::thread poster([&] { loop.call_soon_threadsafe([&] { ++ran; }); });
  poster.join();
  loop.run_until_complete(weave::sleep(0s));
  EXPECT_EQ(ran, 1);
  loop.close();
}

TEST(CallSoonThreadsafe, ClosedLoopRaisesRuntimeError) {
  weave::EventLoop loop;
  loop.close();
  std::atomic<bool> threw{false};
  std::thread poster([&] {
    try {
      loop.call_soon_threadsafe([] {});
    } catch (const weave::RuntimeError&) {
      threw = true;
    }
  });
  poster.join();
  EXPECT_TRUE(threw);
}

TEST(CallSoonThreadsafe, CallbacksPendingAtCloseAreDroppedNotRun) {
  auto alive = std::make_shared<int>(0);
  int ran = 0;
  {
    weave::EventLoop loop;
    std::thread poster([&, alive] { loop.call_soon_threadsafe([&ran, alive] { ++ran; }); });
    poster.join();
    loop.close();
  }
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(alive.use_count(), 1);  // the dropped callback released what it held
}

TEST(CallSoonThreadsafe, LoopBuiltInOneThreadRunsInAnother) {
  weave::EventLoop loop;
  std::atomic<bool> stopped{false};
  std::thread runner([&] {
    loop.run_forever();
    stopped = true;
  });
  std::this_thread::sleep_for(20ms);
  loop.call_soon_threadsafe([&] { loop.stop(); });
  runner.join();
  EXPECT_TRUE(stopped);
  loop.close();
}

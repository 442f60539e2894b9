// AsyncGenerator as asyncio's async generators behave: values in order then nullopt, the body's
// awaits interleaving with other tasks, exceptions reaching the consumer, asend/athrow/aclose,
// destruction running the frame's destructors, one step at a time (RuntimeError), the consumer's
// cancellation raised at the body's await, shutdown_asyncgens() from run(); and the iteration
// forms built on it: StreamReader::lines(), as_completed().next(), Queue::items().

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/steps.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::AsyncGenerator;
using weave::Coro;
using weave_test::run_bounded;
using weave_test::Trace;

namespace {

/// Counts its live instances: a frame's destructors ran when the count is back to zero.
struct Alive {
  explicit Alive(int* n) : n_(n) { ++*n_; }
  Alive(const Alive&) = delete;
  Alive& operator=(const Alive&) = delete;
  ~Alive() { --*n_; }
  int* n_;
};

AsyncGenerator<int> numbers(int n, Trace* trace = nullptr) {
  for (int i = 0; i < n; ++i) {
    co_await weave::sleep(0s);
    if (trace != nullptr) (*trace)("gen " + std::to_string(i));
    co_yield i;
  }
}

template <class G>
Coro<std::vector<int>> collect(G& gen) {
  std::vector<int> out;
  while (std::optional<int> v = co_await gen.next()) out.push_back(*v);
  co_return out;
}

TEST(AsyncGenerator, YieldsInOrderThenNulloptForever) {
  run_bounded([]() -> Coro<void> {
    auto gen = numbers(3);
    {
      auto got_ = co_await collect(gen);
      EXPECT_EQ(got_, (std::vector<int>{0, 1, 2}));
    }
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
  }());
}

TEST(AsyncGenerator, NothingRunsBeforeTheFirstNext) {
  run_bounded([]() -> Coro<void> {
    Trace trace;
    auto gen = numbers(2, &trace);
    co_await weave::sleep(0s);
    EXPECT_TRUE(trace.events.empty());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    EXPECT_EQ(trace.events, (std::vector<std::string>{"gen 0"}));
  }());
}

TEST(AsyncGenerator, BodyAwaitsInterleaveWithOtherTasks) {
  run_bounded([]() -> Coro<void> {
    Trace trace;
    auto other = weave::create_task([](Trace* t) -> Coro<void> {
      for (int i = 0; i < 2; ++i) {
        (*t)("other " + std::to_string(i));
        co_await weave::sleep(0s);
      }
    }(&trace));
    auto gen = numbers(2, &trace);
    while (auto v = co_await gen.next()) trace("got " + std::to_string(*v));
    co_await other;
    EXPECT_EQ(trace.events,
              (std::vector<std::string>{"other 0", "gen 0", "got 0", "other 1", "gen 1", "got 1"}));
  }());
}

AsyncGenerator<int> fails_after(int n) {
  for (int i = 0; i < n; ++i) co_yield i;
  throw std::logic_error("boom");
}

TEST(AsyncGenerator, ExceptionReachesTheConsumerOnceThenFinished) {
  run_bounded([]() -> Coro<void> {
    auto gen = fails_after(1);
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    bool raised = false;
    try {
      (void)co_await gen.next();
    } catch (const std::logic_error& e) {
      raised = std::string(e.what()) == "boom";
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
  }());
}

AsyncGenerator<std::unique_ptr<int>> boxes(int n) {
  for (int i = 0; i < n; ++i) co_yield std::make_unique<int>(i);
}

TEST(AsyncGenerator, MoveOnlyValuesAreMovedAndLvaluesCopied) {
  run_bounded([]() -> Coro<void> {
    auto gen = boxes(2);
    auto a = co_await gen.next();
    auto b = co_await gen.next();
    EXPECT_EQ(**a, 0);
    EXPECT_EQ(**b, 1);
    std::string kept = "kept";
    auto strings = [](std::string* s) -> AsyncGenerator<std::string> { co_yield *s; }(&kept);
    {
      auto got_ = co_await strings.next();
      EXPECT_EQ(got_, "kept");
    }
    EXPECT_EQ(kept, "kept");
  }());
}

AsyncGenerator<int, int> running_total(std::vector<std::string>* log) {
  int total = 0;
  for (;;) {
    std::optional<int> sent = co_yield total;
    log->push_back(sent ? "sent " + std::to_string(*sent) : "next");
    if (sent) total += *sent;
  }
}

TEST(AsyncGenerator, AsendDeliversTheValueAtTheYield) {
  run_bounded([]() -> Coro<void> {
    std::vector<std::string> log;
    auto gen = running_total(&log);
    bool refused = false;
    try {
      (void)co_await gen.asend(5);
    } catch (const weave::ValueError& e) {
      refused =
          std::string(e.what()) == "can't send non-None value to a just-started async generator";
    }
    EXPECT_TRUE(refused);
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    {
      auto got_ = co_await gen.asend(5);
      EXPECT_EQ(got_, 5);
    }
    {
      auto got_ = co_await gen.asend(2);
      EXPECT_EQ(got_, 7);
    }
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 7);
    }
    EXPECT_EQ(log, (std::vector<std::string>{"sent 5", "sent 2", "next"}));
  }());
}

AsyncGenerator<int> catches_runtime_errors(std::vector<std::string>* log) {
  int i = 0;
  for (;;) {
    try {
      co_yield i++;
    } catch (const weave::RuntimeError& e) {
      log->push_back(std::string("caught ") + e.what());
      i = 100;
    }
  }
}

TEST(AsyncGenerator, AthrowRaisesAtTheYieldAndReturnsTheNextValue) {
  run_bounded([]() -> Coro<void> {
    std::vector<std::string> log;
    auto gen = catches_runtime_errors(&log);
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    {
      auto got_ = co_await gen.athrow(weave::RuntimeError("x"));
      EXPECT_EQ(got_, 100);
    }
    EXPECT_EQ(log, (std::vector<std::string>{"caught x"}));
    bool propagated = false;
    try {
      (void)co_await gen.athrow(std::out_of_range("y"));
    } catch (const std::out_of_range&) {
      propagated = true;
    }
    EXPECT_TRUE(propagated);
    EXPECT_TRUE(gen.finished());
  }());
}

TEST(AsyncGenerator, AthrowOnAFreshGeneratorEndsItWithoutRunningTheBody) {
  run_bounded([]() -> Coro<void> {
    Trace trace;
    auto gen = numbers(3, &trace);
    bool raised = false;
    try {
      (void)co_await gen.athrow(std::out_of_range("early"));
    } catch (const std::out_of_range&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
    EXPECT_TRUE(trace.events.empty());
  }());
}

AsyncGenerator<int> with_async_cleanup(int* alive, std::vector<std::string>* log) {
  Alive guard(alive);
  bool closing = false;
  try {
    for (int i = 0;; ++i) co_yield i;
  } catch (const weave::GeneratorExit&) {
    closing = true;
  }
  if (closing) {
    co_await weave::sleep(1ms);  // clean-up that awaits, as an `async with` would
    log->push_back("cleaned up");
  }
}

TEST(AsyncGenerator, AcloseRunsTheCleanupNowAwaitsIncluded) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    std::vector<std::string> log;
    auto gen = with_async_cleanup(&alive, &log);
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    EXPECT_EQ(alive, 1);
    co_await gen.aclose();
    EXPECT_EQ(log, (std::vector<std::string>{"cleaned up"}));
    EXPECT_EQ(alive, 0);
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
    co_await gen.aclose();  // a second close does nothing
  }());
}

TEST(AsyncGenerator, AcloseOfAnUnstartedOrFinishedGeneratorRunsNothing) {
  run_bounded([]() -> Coro<void> {
    Trace trace;
    auto fresh = numbers(2, &trace);
    co_await fresh.aclose();
    {
      auto got_ = co_await fresh.next();
      EXPECT_EQ(got_, std::nullopt);
    }
    auto done = numbers(1, &trace);
    (void)co_await collect(done);
    co_await done.aclose();
    EXPECT_EQ(trace.events, (std::vector<std::string>{"gen 0"}));
  }());
}

AsyncGenerator<int> ignores_exit() {
  for (int i = 0;; ++i) {
    try {
      co_yield i;
    } catch (const weave::GeneratorExit&) {
    }
  }
}

TEST(AsyncGenerator, AcloseOfAGeneratorThatYieldsAgainIsRuntimeError) {
  run_bounded([]() -> Coro<void> {
    auto gen = ignores_exit();
    (void)co_await gen.next();
    bool raised = false;
    try {
      co_await gen.aclose();
    } catch (const weave::RuntimeError& e) {
      raised = std::string(e.what()) == "async generator ignored GeneratorExit";
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(gen.finished());
  }());
}

AsyncGenerator<int> holds(int* alive) {
  Alive a(alive);
  co_await weave::sleep(0s);
  Alive b(alive);
  for (int i = 0;; ++i) co_yield i;
}

TEST(AsyncGenerator, DestroyedUnfinishedRunsTheFrameDestructors) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    {
      auto gen = holds(&alive);
      {
        auto got_ = co_await gen.next();
        EXPECT_EQ(got_, 0);
      }
      EXPECT_EQ(alive, 2);
    }
    EXPECT_EQ(alive, 0);
    { auto never_started = holds(&alive); }
    EXPECT_EQ(alive, 0);
  }());
}

AsyncGenerator<int> waits_on(weave::Event* ev, std::vector<std::string>* log) {
  try {
    co_await ev->wait();
  } catch (const weave::CancelledError& e) {
    log->push_back("body cancelled: " + e.message());
    throw;
  }
  co_yield 1;
}

TEST(AsyncGenerator, ASecondConcurrentNextIsRuntimeError) {
  run_bounded([]() -> Coro<void> {
    weave::Event ev;
    std::vector<std::string> log;
    auto gen = waits_on(&ev, &log);
    auto first = weave::create_task([](AsyncGenerator<int>* g) -> Coro<std::optional<int>> {
      co_return co_await g->next();
    }(&gen));
    co_await weave::sleep(0s);
    EXPECT_TRUE(gen.is_running());
    std::string message;
    try {
      (void)co_await gen.next();
    } catch (const weave::RuntimeError& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "anext(): asynchronous generator is already running");
    message.clear();
    try {
      co_await gen.aclose();
    } catch (const weave::RuntimeError& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "aclose(): asynchronous generator is already running");
    ev.set();
    {
      auto got_ = co_await first;
      EXPECT_EQ(got_, 1);
    }
  }());
}

TEST(AsyncGenerator, CancellingTheConsumerRaisesAtTheBodysAwait) {
  run_bounded([]() -> Coro<void> {
    weave::Event ev;
    std::vector<std::string> log;
    auto gen = waits_on(&ev, &log);
    auto consumer = weave::create_task([](AsyncGenerator<int>* g) -> Coro<std::optional<int>> {
      co_return co_await g->next();
    }(&gen));
    co_await weave::sleep(0s);
    consumer.cancel("stop");
    bool cancelled = false;
    try {
      (void)co_await consumer;
    } catch (const weave::CancelledError& e) {
      cancelled = e.message() == "stop";
    }
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(log, (std::vector<std::string>{"body cancelled: stop"}));
    EXPECT_TRUE(gen.finished());
  }());
}

TEST(AsyncGenerator, RunClosesTheGeneratorsLeftOpen) {
  int alive = 0;
  std::vector<std::string> log;
  auto kept = std::make_unique<AsyncGenerator<int>>();
  weave::run([](AsyncGenerator<int>* out, int* a, std::vector<std::string>* l) -> Coro<void> {
    *out = with_async_cleanup(a, l);
    {
      auto got_ = co_await out->next();
      EXPECT_EQ(got_, 0);
    }
  }(kept.get(), &alive, &log));
  EXPECT_EQ(log, (std::vector<std::string>{"cleaned up"}));
  EXPECT_EQ(alive, 0);
  EXPECT_TRUE(kept->finished());
}

TEST(AsyncGenerator, ShutdownAsyncgensSkipsDestroyedAndReportsFailedCloses) {
  weave::EventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler(
      [&](weave::EventLoop&, const weave::ExceptionContext& c) { reports.push_back(c.message); });
  int alive = 0;
  auto stubborn = std::make_unique<AsyncGenerator<int>>();
  loop.run_until_complete([](AsyncGenerator<int>* s, int* a) -> Coro<void> {
    auto gone = holds(a);
    (void)co_await gone.next();  // listed, then destroyed at the end of this scope
    *s = ignores_exit();
    (void)co_await s->next();
  }(stubborn.get(), &alive));
  EXPECT_EQ(alive, 0);
  loop.run_until_complete(loop.shutdown_asyncgens());
  EXPECT_EQ(
      reports,
      (std::vector<std::string>{"an error occurred during closing of asynchronous generator"}));
  EXPECT_TRUE(stubborn->finished());
  loop.run_until_complete(loop.shutdown_asyncgens());  // nothing left to close
  EXPECT_EQ(reports.size(), 1U);
  loop.close();
}

TEST(AsyncGenerator, OutlivesItsLoop) {
  int alive = 0;
  auto gen = std::make_unique<AsyncGenerator<int>>();
  {
    weave::EventLoop loop;
    loop.run_until_complete([](AsyncGenerator<int>* g, int* a) -> Coro<void> {
      *g = holds(a);
      (void)co_await g->next();
    }(gen.get(), &alive));
    loop.close();
  }
  EXPECT_EQ(alive, 2);
  gen.reset();
  EXPECT_EQ(alive, 0);
}

// ---- pipelines: stages that await between yields, three deep -----------------------------------

/// Awaits a timer, a nested Coro that awaits, and a bare yield of the loop before each value.
AsyncGenerator<int> slow_source(int n, int* alive) {
  Alive a(alive);
  for (int i = 0; i < n; ++i) {
    co_await weave::sleep(1ms);
    const int v = co_await weave_test::value_after(i, 1);
    co_await weave::sleep(0s);
    co_yield v;
  }
}
AsyncGenerator<int> times_ten(AsyncGenerator<int> in, int* alive) {
  Alive a(alive);
  while (auto v = co_await in.next()) co_yield *v * 10;
}
AsyncGenerator<int> plus(AsyncGenerator<int> in, int k, int* alive) {
  Alive a(alive);
  while (auto v = co_await in.next()) {
    co_await weave::sleep(0s);
    co_yield *v + k;
  }
}

TEST(AsyncGeneratorPipeline, ThreeDeepWithAwaitsBetweenYields) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    int ticks = 0;
    auto ticker = weave::create_task([](int* t) -> Coro<void> {
      for (;;) {
        ++*t;
        co_await weave::sleep(0s);
      }
    }(&ticks));
    {
      auto gen = plus(times_ten(slow_source(3, &alive), &alive), 1, &alive);
      std::vector<int> got;
      std::vector<int> ticks_seen;
      while (auto v = co_await gen.next()) {
        got.push_back(*v);
        ticks_seen.push_back(ticks);
      }
      EXPECT_EQ(got, (std::vector<int>{1, 11, 21}));
      // Each value took several loop iterations, the other task ran in each.
      EXPECT_EQ(ticks_seen.size(), 3U);
      ticks_seen.resize(3);
      EXPECT_GE(ticks_seen[0], 3);
      EXPECT_GE(ticks_seen[1] - ticks_seen[0], 3);
      EXPECT_GE(ticks_seen[2] - ticks_seen[1], 3);
      EXPECT_TRUE(gen.finished());
      EXPECT_EQ(alive, 0);  // every body ran to its end
    }
    ticker.cancel();
  }());
}

AsyncGenerator<int> fails_after_awaiting(int n, int* alive) {
  Alive a(alive);
  for (int i = 0; i < n; ++i) co_yield i;
  co_await weave::sleep(0s);
  throw std::logic_error("deep");
}

TEST(AsyncGeneratorPipeline, AnExceptionAfterAYieldCrossesEveryStageOnce) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    auto gen = plus(times_ten(fails_after_awaiting(2, &alive), &alive), 1, &alive);
    std::vector<int> got;
    std::string error;
    try {
      while (auto v = co_await gen.next()) got.push_back(*v);
    } catch (const std::logic_error& e) {
      error = e.what();
    }
    EXPECT_EQ(got, (std::vector<int>{1, 11}));
    EXPECT_EQ(error, "deep");
    EXPECT_EQ(alive, 0);  // each stage's body unwound
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
  }());
}

/// A stage that waits for `gates[k]` at its k-th await: before the first value, between the
/// values, after the last one. Logs where it waits and where it saw the cancellation.
AsyncGenerator<int> gated(std::vector<weave::Event>* gates, std::vector<std::string>* log,
                          int* alive) {
  Alive a(alive);
  std::size_t k = 0;
  auto pass = [&]() -> weave::Event::WaitAwaiter {
    log->push_back("wait " + std::to_string(k));
    return (*gates)[k++].wait();
  };
  try {
    co_await pass();
    co_yield 1;
    co_await pass();
    co_yield 2;
    co_await pass();
  } catch (const weave::CancelledError& e) {
    log->push_back("cancelled at " + std::to_string(k - 1) + ": " + e.message());
    throw;
  }
}

Coro<std::vector<int>> drain(AsyncGenerator<int>* gen) {
  std::vector<int> got;
  while (auto v = co_await gen->next()) got.push_back(*v);
  co_return got;
}

class CancelAtEachAwait : public ::testing::TestWithParam<int> {};

TEST_P(CancelAtEachAwait, RaisesInTheInnermostBodyAndReachesTheConsumer) {
  const int point = GetParam();
  run_bounded([](int point) -> Coro<void> {
    int alive = 0;
    std::vector<std::string> log;
    std::vector<weave::Event> gates(3);
    for (int i = 0; i < point; ++i) gates[static_cast<std::size_t>(i)].set();
    auto gen = plus(times_ten(gated(&gates, &log, &alive), &alive), 1, &alive);
    auto consumer = weave::create_task(drain(&gen));
    co_await weave_test::until([&] { return log.size() == static_cast<std::size_t>(point) + 1; });
    co_await weave_test::yield(2);
    EXPECT_FALSE(consumer.done());  // waiting at `point`, nowhere else
    EXPECT_TRUE(gen.is_running());
    consumer.cancel("stop");
    bool cancelled = false;
    try {
      (void)co_await consumer;
    } catch (const weave::CancelledError& e) {
      cancelled = e.message() == "stop";
    }
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(log.back(), "cancelled at " + std::to_string(point) + ": stop");
    EXPECT_EQ(log.size(), static_cast<std::size_t>(point) + 2);
    EXPECT_EQ(alive, 0);
    EXPECT_TRUE(gen.finished());
  }(point));
}

INSTANTIATE_TEST_SUITE_P(AsyncGeneratorPipeline, CancelAtEachAwait, ::testing::Values(0, 1, 2));

/// Passes each value on once `gate` is set, clearing it again.
AsyncGenerator<int> gated_relay(AsyncGenerator<int> in, weave::Event* gate,
                                std::vector<std::string>* log, int* alive) {
  Alive a(alive);
  try {
    while (auto v = co_await in.next()) {
      log->push_back("relay waits with " + std::to_string(*v));
      co_await gate->wait();
      gate->clear();
      co_yield *v;
    }
  } catch (const weave::CancelledError& e) {
    log->push_back("relay cancelled: " + e.message());
    throw;
  }
}

TEST(AsyncGeneratorPipeline, CancellingWhileAMiddleStageAwaitsLeavesTheInnerOneAtItsYield) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    std::vector<std::string> log;
    weave::Event gate;
    auto inner = times_ten(numbers(3), &alive);
    auto gen = plus(gated_relay(std::move(inner), &gate, &log, &alive), 1, &alive);
    auto consumer = weave::create_task(drain(&gen));
    co_await weave_test::until([&] { return log.size() == 1; });
    gate.set();
    co_await weave_test::until([&] { return log.size() == 2; });
    co_await weave_test::yield(2);
    EXPECT_EQ(log, (std::vector<std::string>{"relay waits with 0", "relay waits with 10"}));
    consumer.cancel("stop");
    bool cancelled = false;
    try {
      (void)co_await consumer;
    } catch (const weave::CancelledError& e) {
      cancelled = e.message() == "stop";
    }
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(log.back(), "relay cancelled: stop");
    EXPECT_TRUE(gen.finished());
    // The relay and the outer stage unwound; the inner one still waits at its co_yield (its
    // frame belongs to the relay's, destroyed with `gen`).
    EXPECT_EQ(alive, 1);
  }());
}

AsyncGenerator<int> closes_inner(AsyncGenerator<int> in, std::vector<std::string>* log) {
  std::exception_ptr exit;
  try {
    while (auto v = co_await in.next()) co_yield *v;
  } catch (const weave::GeneratorExit&) {
    exit = std::current_exception();
  }
  co_await in.aclose();  // as `async with aclosing(inner)` would
  log->push_back("inner closed");
  if (exit) std::rethrow_exception(exit);
}

TEST(AsyncGeneratorPipeline, AcloseAtAYieldRunsTheCleanupOfEachStageInOrder) {
  run_bounded([]() -> Coro<void> {
    int alive = 0;
    std::vector<std::string> log;
    auto inner = with_async_cleanup(&alive, &log);
    auto gen = closes_inner(std::move(inner), &log);
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 0);
    }
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, 1);
    }
    EXPECT_FALSE(gen.is_running());
    co_await gen.aclose();
    EXPECT_EQ(log, (std::vector<std::string>{"cleaned up", "inner closed"}));
    EXPECT_EQ(alive, 0);
    EXPECT_TRUE(gen.finished());
    {
      auto got_ = co_await gen.next();
      EXPECT_EQ(got_, std::nullopt);
    }
  }());
}

AsyncGenerator<int> cleanup_fails() {
  try {
    co_yield 1;
  } catch (const weave::GeneratorExit&) {
  }
  co_await weave::sleep(0s);
  throw std::out_of_range("cleanup");
}

TEST(AsyncGeneratorPipeline, AnErrorRaisedByTheCleanupReachesAclose) {
  run_bounded([]() -> Coro<void> {
    auto gen = cleanup_fails();
    (void)co_await gen.next();
    bool raised = false;
    try {
      co_await gen.aclose();
    } catch (const std::out_of_range& e) {
      raised = std::string(e.what()) == "cleanup";
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(gen.finished());
  }());
}

// ---- call graphs: a generator's frame sits between its consumer and what it awaits -----------

std::vector<std::string> stack_names(const weave::FutureCallGraph& g) {
  std::vector<std::string> names;
  for (const weave::FrameCallGraphEntry& e : g.call_stack) {
    names.push_back(e.name.substr(0, e.name.find('(', 1)));
  }
  return names;
}

AsyncGenerator<int> waits_for(weave::Event* ev) {
  co_await ev->wait();
  co_yield 7;
}
AsyncGenerator<int, int> passes_on(AsyncGenerator<int> in) {
  while (auto v = co_await in.next()) co_yield *v;
}
AsyncGenerator<int> relays(AsyncGenerator<int, int> in) {
  while (auto v = co_await in.next()) co_yield *v;
}
Coro<int> pipeline_consumer(AsyncGenerator<int>* gen) {
  co_return *co_await gen->next();
}

TEST(AsyncGeneratorCallGraph, TheStackOfATaskWaitingInsideThreeStages) {
  run_bounded([]() -> Coro<void> {
    weave::Event ev;
    auto gen = relays(passes_on(waits_for(&ev)));
    auto consumer = weave::create_task(pipeline_consumer(&gen));
    co_await weave_test::yield(2);
    const weave::FutureCallGraph g = weave::capture_call_graph(weave::TaskRef(consumer));
    EXPECT_EQ(stack_names(g),
              (std::vector<std::string>{
                  "(anonymous namespace)::waits_for", "(anonymous namespace)::passes_on",
                  "(anonymous namespace)::relays", "(anonymous namespace)::pipeline_consumer"}));
    ev.set();
    {
      auto got_ = co_await consumer;
      EXPECT_EQ(got_, 7);
    }
  }());
}

Coro<int> awaited_in_a_body(int v) {
  co_await weave::sleep(0s);
  co_return v;
}
AsyncGenerator<int> awaits_a_coro() {
  co_yield co_await awaited_in_a_body(3);
}
Coro<std::vector<std::string>> graph_after_a_generator() {
  {
    auto gen = awaits_a_coro();
    auto got_ = co_await gen.next();
    EXPECT_EQ(got_, 3);
  }  // the generator's frame is gone: the running frame is this one again
  co_return stack_names(*weave::capture_call_graph());
}

TEST(AsyncGeneratorCallGraph, TheRunningFrameIsTheConsumerAgainAfterAYield) {
  run_bounded([]() -> Coro<void> {
    auto names = co_await weave::create_task(graph_after_a_generator());
    EXPECT_EQ(names, (std::vector<std::string>{"(anonymous namespace)::graph_after_a_generator"}));
  }());
}

Coro<std::vector<std::string>> graph_after_a_pipeline() {
  std::vector<std::string> inside;
  {
    // The innermost body's await moves the running frame into it; each stage hands it on.
    auto gen = relays(passes_on(awaits_a_coro()));
    auto got_ = co_await gen.next();
    EXPECT_EQ(got_, 3);
    inside = stack_names(*weave::capture_call_graph());
  }
  EXPECT_EQ(inside, (std::vector<std::string>{"(anonymous namespace)::graph_after_a_pipeline"}));
  co_return stack_names(*weave::capture_call_graph());
}

TEST(AsyncGeneratorCallGraph, EveryStageHandsTheRunningFrameBackToItsConsumer) {
  run_bounded([]() -> Coro<void> {
    auto names = co_await weave::create_task(graph_after_a_pipeline());
    EXPECT_EQ(names, (std::vector<std::string>{"(anonymous namespace)::graph_after_a_pipeline"}));
  }());
}

TEST(StreamReaderLines, YieldsEachLineUntilEof) {
  run_bounded([]() -> Coro<void> {
    weave::StreamReader reader;
    reader.feed_data("one\ntwo\nthr");
    auto lines = reader.lines();
    std::vector<std::string> got;
    got.push_back(*co_await lines.next());
    got.push_back(*co_await lines.next());
    auto feeder = weave::create_task([](weave::StreamReader r) -> Coro<void> {
      co_await weave::sleep(0s);
      r.feed_data("ee\nfour");
      r.feed_eof();
    }(reader));
    while (auto line = co_await lines.next()) got.push_back(*line);
    co_await feeder;
    EXPECT_EQ(got, (std::vector<std::string>{"one\n", "two\n", "three\n", "four"}));
  }());
}

TEST(StreamReaderLines, AnOverlongLineIsValueError) {
  run_bounded([]() -> Coro<void> {
    weave::StreamReader reader(4);
    reader.feed_data("abcdefgh\n");
    reader.feed_eof();
    auto lines = reader.lines();
    bool raised = false;
    try {
      (void)co_await lines.next();
    } catch (const weave::ValueError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
  }());
}

TEST(AsCompletedNext, YieldsTheTasksThemselvesInFinishingOrder) {
  run_bounded([]() -> Coro<void> {
    std::vector<weave::Task<int>> tasks;
    tasks.push_back(weave::create_task(weave_test::value_after(1, 3)));
    tasks.push_back(weave::create_task(weave_test::value_after(2, 1)));
    tasks.push_back(weave::create_task(weave_test::value_after(3, 2)));
    auto it = weave::as_completed(tasks);
    std::vector<int> order;
    while (std::optional<weave::Task<int>> t = co_await it.next()) {
      EXPECT_TRUE(t->done());
      order.push_back(t->result());
    }
    EXPECT_EQ(order, (std::vector<int>{2, 3, 1}));
    {
      auto got_ = co_await it.next();
      EXPECT_EQ(got_, std::nullopt);
    }
  }());
}

TEST(AsCompletedNext, TimeoutErrorOnceTheTimeoutPassed) {
  run_bounded([]() -> Coro<void> {
    weave::Event never;
    std::vector<weave::Task<int>> tasks;
    tasks.push_back(weave::create_task(weave_test::value_after(1, 0)));
    tasks.push_back(weave::create_task([](weave::Event* e) -> Coro<int> {
      co_await e->wait();
      co_return 2;
    }(&never)));
    auto it = weave::as_completed(tasks, 10ms);
    {
      auto got_ = (co_await it.next())->result();
      EXPECT_EQ(got_, 1);
    }
    bool timed_out = false;
    try {
      (void)co_await it.next();
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    tasks[1].cancel();
  }());
}

TEST(QueueItems, DrainsUntilShutdownAndMarksEachItemDone) {
  run_bounded([]() -> Coro<void> {
    weave::Queue<int> q(2);
    auto producer = weave::create_task([](weave::Queue<int>* queue) -> Coro<void> {
      for (int i = 0; i < 5; ++i) co_await queue->put(i);
      queue->shutdown();
    }(&q));
    auto items = q.items();
    std::vector<int> got;
    while (auto v = co_await items.next()) {
      got.push_back(*v);
      if (got.size() == 1) {
        // The item just given out is not done until the next one is asked for.
        auto joined = weave::create_task(
            [](weave::Queue<int>* queue) -> Coro<void> { co_await queue->join(); }(&q));
        co_await weave::sleep(0s);
        EXPECT_FALSE(joined.done());
        joined.cancel();
      }
    }
    co_await producer;
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
    co_await q.join();  // every item was marked done
  }());
}

TEST(QueueItems, ClosingTheGeneratorMarksTheItemInHandDone) {
  run_bounded([]() -> Coro<void> {
    weave::Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    auto items = q.items();
    {
      auto got_ = co_await items.next();
      EXPECT_EQ(got_, 1);
    }
    co_await items.aclose();
    EXPECT_EQ(q.qsize(), 1U);
    EXPECT_EQ(q.get_nowait(), 2);
    q.task_done();
    co_await q.join();
  }());
}

}  // namespace

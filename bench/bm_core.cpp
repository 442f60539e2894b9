// The core's hot paths, each against a reference measured in the same run:
//   BM_Dispatch_StdDeque          the reference: a std::deque<std::function<void()>> run loop in
//                                 which each callback queues the next one
//   BM_CallSoon_Weave             the same chain through EventLoop::call_soon
//   BM_SleepZero_Weave            a task resuming after sleep(0s): one loop round trip
//   BM_CoroCall_Weave             `co_await f()` inline (symmetric transfer, no scheduling)
//   BM_CreateTaskAwait_Weave      create_task(f()) then co_await it: a task's whole life
//   BM_FutureSetResultAwait_Weave a task awaits a Future that a call_soon callback completes
// Each prints `ns_per_op` and `vs_deque` (that figure over the reference's); the task benchmark
// also prints `vs_coro_call`, what a task costs over an inline call of the same coroutine.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>

#include "weave/locks.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double g_deque_ns = 0;      ///< the reference, once measured
double g_coro_call_ns = 0;  ///< BM_CoroCall_Weave's figure, once measured

double ns_since(Clock::time_point start, std::int64_t ops) {
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return ops == 0 ? 0.0 : ns / static_cast<double>(ops);
}

/// The reference: `n` callbacks, each queueing the next, dispatched FIFO.
double deque_chain(std::int64_t n) {
  std::deque<std::function<void()>> queue;
  std::int64_t remaining = n;
  std::function<void()> step = [&] {
    if (--remaining > 0) queue.emplace_back([&] { step(); });
  };
  const auto start = Clock::now();
  queue.emplace_back(step);
  while (!queue.empty()) {
    std::function<void()> fn = std::move(queue.front());
    queue.pop_front();
    fn();
  }
  return ns_since(start, n);
}

double deque_reference() {
  if (g_deque_ns == 0) g_deque_ns = deque_chain(2000000);
  return g_deque_ns;
}

void report(benchmark::State& state, double ns_per_op) {
  state.SetItemsProcessed(state.iterations());
  state.counters["ns_per_op"] = ns_per_op;
  state.counters["vs_deque"] = ns_per_op / deque_reference();
}

void BM_Dispatch_StdDeque(benchmark::State& state) {
  double ns = 0;
  for (auto _ : state) ns = deque_chain(100000);
  g_deque_ns = ns;
  state.SetItemsProcessed(state.iterations() * 100000);
  state.counters["ns_per_op"] = ns;
}

// ---- call_soon --------------------------------------------------------------------------------

struct CallSoonChain {
  weave::EventLoop* loop = nullptr;
  benchmark::State* state = nullptr;
  weave::Event done;
  void step() {
    if (!state->KeepRunning()) {
      done.set();
      return;
    }
    loop->call_soon([this] { step(); });
  }
};

weave::Coro<double> call_soon_chain(benchmark::State& state) {
  CallSoonChain c;
  c.loop = &weave::get_running_loop();
  c.state = &state;
  const auto start = Clock::now();
  c.step();
  co_await c.done.wait();
  co_return ns_since(start, state.iterations());
}

void BM_CallSoon_Weave(benchmark::State& state) {
  report(state, weave::run(call_soon_chain(state)));
}

// ---- sleep(0s) --------------------------------------------------------------------------------

weave::Coro<double> sleep_zero(benchmark::State& state) {
  const auto start = Clock::now();
  for (auto _ : state) co_await weave::sleep(std::chrono::seconds(0));
  co_return ns_since(start, state.iterations());
}

void BM_SleepZero_Weave(benchmark::State& state) {
  report(state, weave::run(sleep_zero(state)));
}

// ---- inline co_await and tasks ----------------------------------------------------------------

weave::Coro<int> leaf(int i) {
  co_return i + 1;
}

weave::Coro<double> coro_calls(benchmark::State& state) {
  int v = 0;
  const auto start = Clock::now();
  for (auto _ : state) v = co_await leaf(v);
  benchmark::DoNotOptimize(v);
  co_return ns_since(start, state.iterations());
}

void BM_CoroCall_Weave(benchmark::State& state) {
  g_coro_call_ns = weave::run(coro_calls(state));
  report(state, g_coro_call_ns);
}

weave::Coro<double> task_lives(benchmark::State& state) {
  int v = 0;
  const auto start = Clock::now();
  for (auto _ : state) v = co_await weave::create_task(leaf(v));
  benchmark::DoNotOptimize(v);
  co_return ns_since(start, state.iterations());
}

void BM_CreateTaskAwait_Weave(benchmark::State& state) {
  const double ns = weave::run(task_lives(state));
  report(state, ns);
  if (g_coro_call_ns > 0) state.counters["vs_coro_call"] = ns / g_coro_call_ns;
}

// ---- Future -----------------------------------------------------------------------------------

weave::Coro<double> future_rounds(benchmark::State& state) {
  auto& loop = weave::get_running_loop();
  int v = 0;
  const auto start = Clock::now();
  for (auto _ : state) {
    weave::Future<int> f = loop.create_future<int>();
    loop.call_soon([f, v]() mutable { f.set_result(v + 1); });
    v = co_await f;
  }
  benchmark::DoNotOptimize(v);
  co_return ns_since(start, state.iterations());
}

void BM_FutureSetResultAwait_Weave(benchmark::State& state) {
  report(state, weave::run(future_rounds(state)));
}

}  // namespace

BENCHMARK(BM_Dispatch_StdDeque);
BENCHMARK(BM_CallSoon_Weave);
BENCHMARK(BM_SleepZero_Weave);
BENCHMARK(BM_CoroCall_Weave);
BENCHMARK(BM_CreateTaskAwait_Weave);
BENCHMARK(BM_FutureSetResultAwait_Weave);

BENCHMARK_MAIN();

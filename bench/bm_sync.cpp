// Hand-off cost of the sync primitives: two tasks pass control back and forth through a Queue
// pair or a Lock, and the same ping-pong done with bare weave::Future objects is the reference
// measured in the same run. Each benchmark reports `ns_per_handoff` (one task waking the other)
// and `vs_future` (that figure over the Future reference's), so that the ratio says what the
// primitive adds on top of the core's wake-up path.

#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "weave/locks.hpp"
#include "weave/queues.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double g_future_ns = 0;  ///< the reference, once BM_Handoff_Future has run

/// Two one-shot mailboxes. The receiver re-arms its own before it signals the other side, so a
/// signal always lands on a fresh future.
struct Mailboxes {
  std::array<weave::Future<void>, 2> inbox;
};

weave::Coro<void> future_partner(Mailboxes& m) {
  for (;;) {
    co_await m.inbox[1];
    m.inbox[1] = weave::get_running_loop().create_future<void>();
    m.inbox[0].set_result();
  }
}

/// One round trip (two hand-offs) per element of `rounds`; returns nanoseconds per hand-off.
template <class Rounds>
weave::Coro<double> future_rounds(Rounds& rounds) {
  auto& loop = weave::get_running_loop();
  Mailboxes m{{loop.create_future<void>(), loop.create_future<void>()}};
  auto partner = weave::create_task(future_partner(m));
  const auto start = Clock::now();
  std::int64_t done = 0;
  for ([[maybe_unused]] auto _ : rounds) {
    m.inbox[1].set_result();
    co_await m.inbox[0];
    m.inbox[0] = loop.create_future<void>();
    ++done;
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  partner.cancel();
  try {
    co_await partner;
  } catch (const weave::CancelledError&) {
  }
  co_return done == 0 ? 0.0 : ns / static_cast<double>(2 * done);
}

/// `n` rounds outside Google Benchmark's loop (std::views::iota trips clang 14 on libstdc++ 12).
struct Rounds {
  struct Iterator {
    int i;
    int operator*() const noexcept { return i; }
    Iterator& operator++() noexcept {
      ++i;
      return *this;
    }
    bool operator!=(const Iterator& o) const noexcept { return i != o.i; }
  };
  int n;
  Iterator begin() const noexcept { return {0}; }
  Iterator end() const noexcept { return {n}; }
};

/// The reference figure, measured now if BM_Handoff_Future was filtered out of this run.
double future_reference() {
  if (g_future_ns == 0) {
    Rounds rounds{200000};
    g_future_ns = weave::run(future_rounds(rounds));
  }
  return g_future_ns;
}

void report(benchmark::State& state, double ns_per_handoff) {
  state.SetItemsProcessed(2 * state.iterations());
  state.counters["ns_per_handoff"] = ns_per_handoff;
  state.counters["vs_future"] = ns_per_handoff / future_reference();
}

void BM_Handoff_Future(benchmark::State& state) {
  g_future_ns = weave::run(future_rounds(state));
  report(state, g_future_ns);
}

weave::Coro<void> queue_partner(weave::Queue<int>& in, weave::Queue<int>& out) {
  for (;;) co_await out.put(co_await in.get());
}

weave::Coro<double> queue_pingpong(benchmark::State& state) {
  weave::Queue<int> to_partner;
  weave::Queue<int> from_partner;
  auto partner = weave::create_task(queue_partner(to_partner, from_partner));
  const auto start = Clock::now();
  int value = 0;
  for (auto _ : state) {
    co_await to_partner.put(value);
    value = co_await from_partner.get();
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  benchmark::DoNotOptimize(value);
  partner.cancel();
  try {
    co_await partner;
  } catch (const weave::CancelledError&) {
  }
  co_return ns / static_cast<double>(2 * state.iterations());
}

void BM_Handoff_Queue(benchmark::State& state) {
  report(state, weave::run(queue_pingpong(state)));
}

weave::Coro<void> lock_partner(weave::Lock& lock) {
  for (;;) {
    co_await lock.acquire();
    lock.release();
  }
}

weave::Coro<double> lock_pingpong(benchmark::State& state) {
  weave::Lock lock;
  co_await lock.acquire();
  auto partner = weave::create_task(lock_partner(lock));
  co_await weave::sleep(std::chrono::seconds(0));  // let the partner queue up for the lock
  const auto start = Clock::now();
  // No barging: after release() the woken partner runs before this task gets the lock back,
  // so every acquire here is a hand-off there and back.
  for (auto _ : state) {
    lock.release();
    co_await lock.acquire();
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  partner.cancel();
  try {
    co_await partner;
  } catch (const weave::CancelledError&) {
  }
  lock.release();
  co_return ns / static_cast<double>(2 * state.iterations());
}

void BM_Handoff_Lock(benchmark::State& state) {
  report(state, weave::run(lock_pingpong(state)));
}

}  // namespace

BENCHMARK(BM_Handoff_Future);
BENCHMARK(BM_Handoff_Queue);
BENCHMARK(BM_Handoff_Lock);

BENCHMARK_MAIN();

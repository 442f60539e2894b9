// The hot paths allocate nothing once warm (DESIGN.md, performance principles): a task resuming
// after sleep(0s), call_soon, call_later and a sleep with a deadline. This binary replaces the
// global allocation functions with counting ones, warms each path up, then counts the heap
// allocations over many more rounds.
//
// Sanitizer builds turn the coroutine frame pool off (frame_alloc.cpp: every frame comes from
// operator new, so that use-after-free of a frame is still caught). There each coroutine call,
// sleep(d > 0) included, costs exactly one allocation, and the tests assert that count instead:
// the property checked is then "nothing but the frame". sleep(0s) has no frame in any build. The
// sanitizers intercept malloc, not this binary's operator new, so the counting works in those
// builds too and nothing is skipped.

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support/bounded.hpp"

namespace {
std::atomic<long> g_allocations{0};

void* counted_alloc(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (void* p = std::malloc(size)) return p;
  throw std::bad_alloc();
}
void* counted_alloc_aligned(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  const std::size_t rounded = (size + a - 1) / a * a;
  if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded)) return p;
  throw std::bad_alloc();
}
}  // namespace

// The replaceable global allocation functions ([new.delete]); the nothrow and array forms
// forward to these in libstdc++, but are replaced too so that none escapes the count.
void* operator new(std::size_t size) {
  return counted_alloc(size);
}
void* operator new[](std::size_t size) {
  return counted_alloc(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_alloc_aligned(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_alloc_aligned(size, align);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

using namespace std::chrono_literals;
using weave::Coro;
using weave_test::run_bounded;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kPerFrame = 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr long kPerFrame = 1;
#else
constexpr long kPerFrame = 0;
#endif
#else
constexpr long kPerFrame = 0;
#endif

constexpr long kWarm = 1000;
constexpr long kRounds = 10000;

long allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}

/// Allocations made by `rounds` sleep(d) calls of a task, after `kWarm` of them.
Coro<long> sleeps(weave::Clock::duration d, long rounds) {
  for (long i = 0; i < kWarm; ++i) co_await weave::sleep(d);
  const long before = allocations();
  for (long i = 0; i < rounds; ++i) co_await weave::sleep(d);
  co_return allocations() - before;
}

/// A callback that schedules itself again with call_soon (or call_later with `delay`) until
/// `rounds` more runs after warm-up; records the allocations of the measured runs.
struct Chain {
  weave::EventLoop* loop = nullptr;
  weave::Clock::duration delay{};
  long remaining = 0;
  long measured = -1;
  long before = 0;
  weave::Event done;

  void step() {
    if (remaining == kRounds) before = allocations();
    if (remaining-- == 0) {
      measured = allocations() - before;
      done.set();
      return;
    }
    if (delay == weave::Clock::duration::zero()) {
      loop->call_soon([this] { step(); });
    } else {
      loop->call_later(delay, [this] { step(); });
    }
  }
};

Coro<long> chain(weave::Clock::duration delay) {
  Chain c;
  c.loop = &weave::get_running_loop();
  c.delay = delay;
  c.remaining = kWarm + kRounds;
  c.step();
  co_await c.done.wait();
  co_return c.measured;
}

/// A timer armed and cancelled again, `rounds` times after warm-up.
Coro<long> cancelled_timers() {
  auto& loop = weave::get_running_loop();
  long before = 0;
  for (long i = 0; i < kWarm + kRounds; ++i) {
    if (i == kWarm) before = allocations();
    loop.call_later(1h, [] {}).cancel();
  }
  const long measured = allocations() - before;
  co_await weave::sleep(0s);
  co_return measured;
}

Coro<int> child(int i) {
  co_await weave::sleep(0s);
  co_return i;
}

/// create_task + await of a short task: its frame is the one allocation it may make.
Coro<long> spawn_and_await(long rounds) {
  long sum = 0;
  for (long i = 0; i < kWarm; ++i) sum += co_await weave::create_task(child(1));
  const long before = allocations();
  for (long i = 0; i < rounds; ++i) sum += co_await weave::create_task(child(1));
  const long measured = allocations() - before;
  EXPECT_EQ(sum, kWarm + rounds);
  co_return measured;
}

}  // namespace

TEST(Alloc, CountingAllocatorSeesAllocations) {
  const long before = allocations();
  // A direct call of the allocation function: a new-expression may be elided (clang does).
  void* p = ::operator new(16);
  asm volatile("" : : "r"(p) : "memory");
  ::operator delete(p);
  EXPECT_EQ(allocations() - before, 1);
}

TEST(Alloc, ResumeAfterSleepZeroAllocatesNothing) {
  // sleep(0s) is a frameless yield, in every build.
  EXPECT_EQ(run_bounded(sleeps(0s, kRounds)), 0);
}

TEST(Alloc, CallSoonAllocatesNothing) {
  EXPECT_EQ(run_bounded(chain(weave::Clock::duration::zero())), 0);
}

TEST(Alloc, CallLaterAllocatesNothing) {
  EXPECT_EQ(run_bounded(chain(1us)), 0);
}

TEST(Alloc, CancelledTimerAllocatesNothing) {
  EXPECT_EQ(run_bounded(cancelled_timers()), 0);
}

TEST(Alloc, SleepWithDeadlineAllocatesNothingButTheFrame) {
  EXPECT_EQ(run_bounded(sleeps(1us, 2000)), kPerFrame * 2000);
}

TEST(Alloc, TaskCostsAtMostItsFrame) {
  // Each round: the task's frame; the sleep(0s) it awaits has none.
  EXPECT_EQ(run_bounded(spawn_and_await(kRounds)), kPerFrame * kRounds);
}

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "support/bounded.hpp"

using namespace std::chrono_literals;
using weave::Coro;
using weave_test::run_bounded;

namespace {
Coro<int> answer() {
  co_return 42;
}
Coro<int> add(int a, int b) {
  co_return co_await answer() - 42 + a + b;
}
Coro<void> fail() {
  throw std::runtime_error("boom");
  co_return;
}
Coro<long> chain(long depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await chain(depth - 1);
}
Coro<long> loop_awaits(long n) {
  long total = 0;
  for (long i = 0; i < n; ++i) total += co_await answer();
  co_return total;
}
// Symmetric transfer relies on the compiler's tail call; sanitizer builds turn tail calls off,
// so the stack-depth property is checked in the release and debug builds only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kTailCalls = false;
#else
constexpr bool kTailCalls = true;
#endif
struct Counted {
  static inline int alive = 0;
  Counted() { ++alive; }
  Counted(const Counted&) { ++alive; }
  ~Counted() { --alive; }
};
Coro<int> holds(Counted) {
  co_return 1;
}
}  // namespace

TEST(Coro, IsLazyUntilAwaited) {
  bool ran = false;
  auto body = [&]() -> Coro<void> {
    ran = true;
    co_return;
  };
  {
    Coro<void> c = body();
    EXPECT_FALSE(ran);
  }
  EXPECT_FALSE(ran);
}

TEST(Coro, AwaitReturnsValueInline) {
  EXPECT_EQ(run_bounded(add(1, 2)), 3);
}

TEST(Coro, AwaitRethrowsTheException) {
  EXPECT_THROW(run_bounded(fail()), std::runtime_error);
}

TEST(Coro, MillionSynchronousAwaitsDoNotGrowTheStack) {
  if (!kTailCalls) GTEST_SKIP() << "sanitizers disable the tail calls symmetric transfer needs";
  EXPECT_EQ(run_bounded(loop_awaits(1'000'000)), 42'000'000);
}

TEST(Coro, DeepChainRunsBySymmetricTransfer) {
  if (!kTailCalls) GTEST_SKIP() << "sanitizers disable the tail calls symmetric transfer needs";
  EXPECT_EQ(run_bounded(chain(100'000)), 100'000);
}

TEST(Coro, DestroyingAnUnstartedCoroFreesItsArguments) {
  {
    Coro<int> c = holds(Counted{});
    EXPECT_EQ(Counted::alive, 1);
  }
  EXPECT_EQ(Counted::alive, 0);
}

TEST(Coro, MoveTransfersOwnership) {
  Coro<int> a = answer();
  Coro<int> b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(weave::run(std::move(b)), 42);
}

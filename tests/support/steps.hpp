#pragma once
// Coroutines that take a known number of loop iterations: interleavings in tests are driven by
// sleep(0s), which yields exactly one iteration, so no test depends on wall-clock time.

#include <chrono>
#include <functional>

#include "weave/weave.hpp"

namespace weave_test {

/// Yields `iterations` loop iterations.
inline weave::Coro<void> yield(int iterations = 1) {
  for (int i = 0; i < iterations; ++i) co_await weave::sleep(std::chrono::seconds(0));
}

/// Returns `value` after `iterations` loop iterations.
inline weave::Coro<int> value_after(int value, int iterations) {
  co_await yield(iterations);
  co_return value;
}

/// Yields until `done()`, for I/O whose arrival is up to the kernel; the test's deadline
/// (run_bounded) is what bounds it.
inline weave::Coro<void> until(const std::function<bool()>& done) {
  for (int i = 0; i < 100000 && !done(); ++i) {
    co_await weave::sleep(i < 100 ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1));
  }
}

}  // namespace weave_test

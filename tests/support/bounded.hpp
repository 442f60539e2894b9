#pragma once
// Every test body runs under a deadline: a hang becomes a TimeoutError and a failed test instead
// of a stuck suite. The deadline scales with WEAVE_TEST_TIMEOUT_SCALE for sanitizer builds.

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "weave/weave.hpp"

/// ASSERT_EQ for a coroutine body (gtest's ASSERT_* return, which a coroutine cannot).
#define CO_ASSERT_EQ(a, b)        \
  do {                            \
    EXPECT_EQ(a, b);              \
    if (!((a) == (b))) co_return; \
  } while (0)

namespace weave_test {

inline std::chrono::milliseconds scaled(std::chrono::milliseconds d) {
  const char* s = std::getenv("WEAVE_TEST_TIMEOUT_SCALE");
  return s != nullptr ? d * std::max(1, std::atoi(s)) : d;
}

/// weave::run(body) with a deadline of `limit` (scaled).
template <class T>
T run_bounded(weave::Coro<T> body, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return weave::run(weave::timeout(scaled(limit), std::move(body)));
}

/// Collects events in order, to assert interleavings.
struct Trace {
  std::vector<std::string> events;
  void operator()(std::string e) { events.push_back(std::move(e)); }
};

}  // namespace weave_test

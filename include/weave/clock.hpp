#pragma once
/// \file clock.hpp
/// The one clock of weave: loop time, timers and executor timeouts all use it.

#include <chrono>

namespace weave {
using Clock = std::chrono::steady_clock;
}  // namespace weave

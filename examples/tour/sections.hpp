// The tour's sections that live in files of their own, one per service or capability, so that
// each grows without touching the others. examples/tour.cpp runs them in this order.
#pragma once

#include "weave/weave.hpp"

namespace tour {
double since(weave::Clock::time_point t0);
/// Lines of a file through async generators, a bounded queue and a process pool, vs serially.
weave::Coro<void> pipeline_section();
}  // namespace tour

#include <chrono>

#include "sections.hpp"

namespace tour {
double since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}
}  // namespace tour

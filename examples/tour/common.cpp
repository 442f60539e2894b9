#include <chrono>

#include "sections.hpp"

namespace tour {
double since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}
weave::Coro<void> fetch(int ms) {
  co_await weave::sleep(std::chrono::milliseconds(ms));
}
}  // namespace tour

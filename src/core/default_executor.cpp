#include "core/loop_impl.hpp"

namespace weave {
void EventLoop::shutdown_default_executor() {}
}  // namespace weave

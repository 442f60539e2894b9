#pragma once
// Signal handlers of a loop (asyncio's add_signal_handler), through a signalfd; see signals.cpp.

#include <csignal>

namespace weave {
class EventLoop;
}

namespace weave::detail {

/// The identity of the handler add_signal_handler installed for `sig` on `loop`, or nullptr.
/// Runner uses it to tell whether its SIGINT handler is still the one installed.
const void* signal_handler_identity(EventLoop& loop, int sig) noexcept;

/// True when the calling thread is the process's main thread (its tid is the pid).
bool in_main_thread() noexcept;

}  // namespace weave::detail

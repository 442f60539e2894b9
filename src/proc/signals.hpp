#pragma once
// Signal handlers of a loop (asyncio's add_signal_handler), through a signalfd; see signals.cpp.

#include <csignal>

#include "weave/loop.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

/// True when the calling thread is the process's main thread (its tid is the pid).
bool in_main_thread() noexcept;

/// asyncio.Runner's Ctrl-C handling for the duration of one Runner::run() (see signals.cpp):
/// taken over only in the main thread while SIGINT has its default disposition. The first
/// SIGINT cancels `main` from a loop callback; a second one (or one after `main` is done) puts
/// the default disposition back and re-raises the signal at once, from the signal handler
/// itself, so that even a main task that never yields can be interrupted.
class SigintGuard {
 public:
  SigintGuard(EventLoop& loop, TaskRef main);
  /// Puts the previous disposition back, unless the program installed another one meanwhile.
  ~SigintGuard();
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;
  /// SIGINTs received since the guard took over.
  int interrupts() const noexcept;

 private:
  void on_interrupt();

  EventLoop& loop_;
  TaskRef main_;
  int fd_ = -1;  ///< eventfd the signal handler writes to; -1 when SIGINT was not taken over
  struct sigaction previous_ {};
};

}  // namespace weave::detail

#pragma once
// asyncio's _FlowControlMixin for the transports that buffer writes (stream and datagram): the
// water marks, and the pause_writing / resume_writing calls that crossing them triggers. A
// protocol's failure there is reported, never fatal to the transport, as in asyncio.

#include <cstddef>
#include <exception>
#include <optional>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

class WriteFlow {
 public:
  static constexpr std::size_t kDefaultHigh = std::size_t{64} * 1024;

  /// High defaults to 4 × low, or 64 KiB; low to high / 4. Errors: ValueError when low > high.
  void set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    const std::size_t h = high ? *high : low ? 4 * *low : kDefaultHigh;
    const std::size_t l = low ? *low : h / 4;
    if (l > h) throw ValueError("high must be >= low must be >= 0");
    high_ = h;
    low_ = l;
  }
  /// (low, high), as asyncio's get_write_buffer_limits.
  std::pair<std::size_t, std::size_t> limits() const noexcept { return {low_, high_}; }
  /// pause_writing() was called and resume_writing() not yet.
  bool paused() const noexcept { return paused_; }

  template <class P>
  void maybe_pause(std::size_t buffered, P& protocol, EventLoop& loop) noexcept {
    if (buffered <= high_ || paused_) return;
    paused_ = true;
    try {
      protocol.pause_writing();
    } catch (...) {
      loop.call_exception_handler(
          {"protocol.pause_writing() failed", std::current_exception(), std::nullopt});
    }
  }

  template <class P>
  void maybe_resume(std::size_t buffered, P& protocol, EventLoop& loop) noexcept {
    if (!paused_ || buffered > low_) return;
    paused_ = false;
    try {
      protocol.resume_writing();
    } catch (...) {
      loop.call_exception_handler(
          {"protocol.resume_writing() failed", std::current_exception(), std::nullopt});
    }
  }

 private:
  std::size_t high_ = kDefaultHigh;
  std::size_t low_ = kDefaultHigh / 4;
  bool paused_ = false;  ///< pause_writing() was called
};

}  // namespace weave::detail

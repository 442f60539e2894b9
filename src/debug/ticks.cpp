// The hooks' time stamps (debug_mode.hpp): the TSC when the kernel's own clock source is the TSC
// (then it is invariant and the same on every CPU), converted to time by a rate measured against
// Clock: the span from the first stamp to the conversion, so that it only gets more exact.

#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "debug/debug_mode.hpp"

namespace weave::detail::dbg {

std::atomic<bool> g_use_tsc{false};
TickBase g_tick_base;

namespace {
std::uint64_t clock_ns() noexcept {
  return static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
}

bool kernel_clock_is_tsc() noexcept {
#if defined(__x86_64__)
  std::FILE* f =
      std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool tsc = std::fgets(name, sizeof name, f) != nullptr && std::strncmp(name, "tsc", 3) == 0;
  std::fclose(f);
  return tsc;
#else
  return false;
#endif
}

/// A stamp and the Clock reading in the middle of it.
void pair_now(std::uint64_t& tick, std::uint64_t& ns) noexcept {
  const std::uint64_t a = clock_ns();
  tick = ticks();
  const std::uint64_t b = clock_ns();
  ns = a + (b - a) / 2;
}

std::atomic<double> g_frozen_rate{0};  ///< ns per tick, once measured over a long enough span

}  // namespace

/// A span under a millisecond is stretched to one (once: the first conversion).
double ns_per_tick() noexcept {
  if (!g_use_tsc.load(std::memory_order_relaxed)) return 1.0;
  const double frozen = g_frozen_rate.load(std::memory_order_relaxed);
  if (frozen != 0) return frozen;
  std::uint64_t tick = 0, ns = 0;
  pair_now(tick, ns);
  if (ns - g_tick_base.ns0 < 1000000) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(1000000 - (ns - g_tick_base.ns0)));
    pair_now(tick, ns);
  }
  const double r = tick > g_tick_base.tick0 ? static_cast<double>(ns - g_tick_base.ns0) /
                                                  static_cast<double>(tick - g_tick_base.tick0)
                                            : 1.0;
  if (ns - g_tick_base.ns0 >= 1000000000) g_frozen_rate.store(r, std::memory_order_relaxed);
  return r;
}

void init_ticks() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    g_use_tsc.store(kernel_clock_is_tsc(), std::memory_order_relaxed);
    pair_now(g_tick_base.tick0, g_tick_base.ns0);
    g_tick_base.tsc = g_use_tsc.load(std::memory_order_relaxed) ? 1 : 0;
  });
}

Clock::duration ticks_duration(std::uint64_t delta) noexcept {
  if (!g_use_tsc.load(std::memory_order_relaxed)) return Clock::duration(delta);
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::nano>(static_cast<double>(delta) * ns_per_tick()));
}

std::uint64_t ticks_to_ns(std::uint64_t stamp, double r) noexcept {
  if (!g_use_tsc.load(std::memory_order_relaxed)) return stamp;
  const double d = stamp >= g_tick_base.tick0 ? static_cast<double>(stamp - g_tick_base.tick0) * r
                                              : -static_cast<double>(g_tick_base.tick0 - stamp) * r;
  return static_cast<std::uint64_t>(static_cast<double>(g_tick_base.ns0) + d);
}

}  // namespace weave::detail::dbg

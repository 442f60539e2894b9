#pragma once
// Bounded spinning before a blocking wait, for the executors' hand-offs.
//
// Waking a thread that sleeps on an idle core costs tens of microseconds on a virtual machine
// (an inter-processor interrupt, then the core leaving its idle state), far more than a no-op
// call. Watching a flag for a few microseconds first lets a quick answer arrive with no wake-up
// at all. The spin pauses between polls, to leave the core to a hyper-thread sibling and save
// power.
//
// Spinning only pays while the threads involved each have a CPU. When there are more runnable
// threads than CPUs a spinner is just another runnable thread: the thread it waits for may sit
// in a run queue behind it or behind someone else's work for a whole time slice, whereas a
// thread woken from a sleep is scheduled at once. So spin_until() spins only while the machine
// recently had no more runnable threads than CPUs (see spinning_pays()); otherwise the executors
// hand off with plain blocking waits, as they would without spinning.

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace weave::concurrent::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// True while the machine recently had a CPU for every runnable thread. Samples the kernel's
/// count of runnable threads at most every half millisecond; cheap otherwise.
bool spinning_pays() noexcept;

/// Polls `ready()` for at most `budget` (not at all when spinning does not pay); true as soon as
/// it holds, false otherwise, and the caller then blocks the ordinary way.
template <class Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds budget) {
  if (ready()) return true;
  if (!spinning_pays()) return false;
  constexpr int kPollsPerClockRead = 16;
  auto deadline = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < kPollsPerClockRead; ++i) {
      cpu_relax();
      if (ready()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace weave::concurrent::detail

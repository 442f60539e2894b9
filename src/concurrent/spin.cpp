// See spin.hpp. The count of runnable threads is the "running" half of the fourth field of
// /proc/loadavg, which the kernel computes when it is read (unlike the averages). The thread that
// reads it is one of them. Spinning pays if, in the last few samples, there was a moment with no
// more runnable threads than CPUs: the samples are taken by threads about to spin, often just as
// they wake another, so a single sample overstates the load; several in a row do not.

#include "concurrent/spin.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace weave::concurrent::detail {

namespace {

constexpr std::chrono::microseconds kSampleEvery{500};
constexpr int kSamples = 4;

int online_cpus() noexcept {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

/// Runnable threads on the machine now, or -1 if unknown.
int runnable_threads() noexcept {
  // Opened for each sample, not kept: a library should not hold descriptors nobody asked for.
  int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // "0.50 0.40 0.30 3/250 12345": skip three fields, then read the number before the slash.
  const char* p = buf;
  for (int field = 0; field < 3; ++field) {
    while (*p != '\0' && *p != ' ') ++p;
    while (*p == ' ') ++p;
  }
  char* end = nullptr;
  long running = std::strtol(p, &end, 10);
  if (end == p || *end != '/') return -1;
  return static_cast<int>(running);
}

std::atomic<std::int64_t> next_sample{0};  // steady_clock ticks
std::atomic<unsigned> crowded_samples{0};  // bit i: sample i (mod kSamples) saw too many threads
std::atomic<unsigned> sample_index{0};
std::atomic<bool> pays{true};

}  // namespace

bool spinning_pays() noexcept {
  // On one CPU the thread a spinner waits for can only run once the spinner stops.
  static const int cpus = online_cpus();
  if (cpus < 2) return false;
  std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::int64_t due = next_sample.load(std::memory_order_relaxed);
  if (now < due) return pays.load(std::memory_order_relaxed);
  std::int64_t next =
      now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(kSampleEvery).count();
  // One sampler at a time; the others use the last verdict.
  if (!next_sample.compare_exchange_strong(due, next, std::memory_order_relaxed)) {
    return pays.load(std::memory_order_relaxed);
  }
  int running = runnable_threads();
  unsigned bit = 1U << (sample_index.fetch_add(1, std::memory_order_relaxed) % kSamples);
  unsigned crowded = crowded_samples.load(std::memory_order_relaxed);
  crowded = running > cpus ? (crowded | bit) : (crowded & ~bit);
  crowded_samples.store(crowded, std::memory_order_relaxed);
  bool verdict = crowded != (1U << kSamples) - 1;
  pays.store(verdict, std::memory_order_relaxed);
  return verdict;
}

}  // namespace weave::concurrent::detail

#pragma once
// How many CPUs this process may run on (its affinity mask), as os.process_cpu_count().

#include <sched.h>

#include <algorithm>
#include <thread>

namespace weave::concurrent::detail {

inline int available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

}  // namespace weave::concurrent::detail

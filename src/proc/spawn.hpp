#pragma once
// Starting a child (subprocess.cpp), shared by create_subprocess_* and loop.subprocess_exec.

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "weave/subprocess.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

/// A child just started and watched by `loop`, with the Process's ends of its pipes.
struct SpawnedChild {
  explicit SpawnedChild(Process p) noexcept : process(std::move(p)) {}
  SpawnedChild(SpawnedChild&& o) noexcept
      : process(std::move(o.process)), pipes(std::exchange(o.pipes, {-1, -1, -1})) {}
  SpawnedChild(const SpawnedChild&) = delete;
  SpawnedChild& operator=(const SpawnedChild&) = delete;
  ~SpawnedChild();  ///< closes the pipe ends nobody took

  Process process;
  std::array<int, 3> pipes{-1, -1,
                           -1};  ///< non-blocking, close-on-exec; -1 where the stream is no PIPE
};

/// Spawns argv[0] (PATH lookup) with `opts`. Errors: see create_subprocess_exec.
SpawnedChild spawn_child(EventLoop& loop, std::vector<std::string> argv,
                         const SubprocessOptions& opts);

}  // namespace weave::detail

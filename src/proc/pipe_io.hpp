#pragma once
// communicate()'s pipe I/O: the Process's non-blocking pipe ends, read to end of file or written
// in full, each waiting for readiness on the loop (ReadyWait) only after EAGAIN.

#include <cstddef>
#include <memory>
#include <string>

#include "proc/child_state.hpp"
#include "weave/coro.hpp"

namespace weave::detail {

/// Writes `input` to the child's stdin pipe (if there is one) and closes it. A child that closed
/// its end first (EPIPE) is not an error; the SIGPIPE of that write is swallowed.
/// Cancellation: the wait is withdrawn; part of `input` may have been written; the pipe stays
/// open.
Coro<void> feed_pipe(std::shared_ptr<ChildState> s, std::string input);
/// Reads pipe `index` (1: stdout, 2: stderr) until end of file and closes it; "" when the
/// stream is not a pipe. Errors: std::system_error. Cancellation: what was read is lost.
Coro<std::string> drain_pipe(std::shared_ptr<ChildState> s, std::size_t index);

/// write() that never raises SIGPIPE: the signal is blocked for the call and, if the call
/// raised it, consumed before the mask is restored. Returns write()'s result; errno is kept.
long write_no_sigpipe(int fd, const char* data, std::size_t size) noexcept;

}  // namespace weave::detail

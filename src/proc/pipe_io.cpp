// See pipe_io.hpp.

#include "proc/pipe_io.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "net/ready_wait.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

namespace {
void close_pipe(ChildState& s, std::size_t index) noexcept {
  if (s.pipes[index] >= 0) ::close(s.pipes[index]);
  s.pipes[index] = -1;
}
}  // namespace

long write_no_sigpipe(int fd, const char* data, std::size_t size) noexcept {
  sigset_t pipe_only, old, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  const ssize_t n = ::write(fd, data, size);
  const int err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    const timespec zero{};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

Coro<void> feed_pipe(std::shared_ptr<ChildState> s, std::string input) {
  LoopImpl& loop = get_running_loop().impl();
  std::string_view rest = input;
  while (s->pipes[0] >= 0 && !rest.empty()) {
    const long n = write_no_sigpipe(s->pipes[0], rest.data(), rest.size());
    if (n >= 0) {
      rest.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EAGAIN) {
      co_await ReadyWait(loop, s->pipes[0], io::Interest::Write);
    } else if (errno == EPIPE || errno == ECONNRESET) {
      break;  // the child does not read its input: asyncio ignores BrokenPipeError
    } else if (errno != EINTR) {
      throw os_error(errno, "write to the child's stdin");
    }
  }
  close_pipe(*s, 0);
}

Coro<std::string> drain_pipe(std::shared_ptr<ChildState> s, std::size_t index) {
  LoopImpl& loop = get_running_loop().impl();
  std::string out;
  char buffer[64 * 1024];
  while (s->pipes[index] >= 0) {
    const ssize_t n = ::read(s->pipes[index], buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      close_pipe(*s, index);
    } else if (errno == EAGAIN) {
      co_await ReadyWait(loop, s->pipes[index], io::Interest::Read);
    } else if (errno != EINTR) {
      throw os_error(errno, "read from the child");
    }
  }
  co_return out;
}

}  // namespace weave::detail

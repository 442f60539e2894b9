#pragma once
/// \file subprocess.hpp
/// asyncio.subprocess: child processes with pipes to their standard streams.
///
///   weave::SubprocessOptions pipes{.stdin_ = weave::PIPE, .stdout_ = weave::PIPE};
///   auto proc = co_await weave::create_subprocess_exec("cat", {}, pipes);
///   auto [out, err] = co_await proc.communicate("hello");
///   int code = co_await proc.wait();
///
/// A child is started with posix_spawn (vfork + exec: safe in a multi-threaded program), or,
/// when it must change its user, group or umask (which posix_spawn cannot do), with fork and
/// only async-signal-safe calls before exec; by default with every fd but its three standard
/// streams closed (subprocess's close_fds=True), an empty signal
/// mask and SIGPIPE/SIGXFSZ at their default disposition (subprocess's restore_signals=True).
/// Its exit is noticed through a pidfd watched by the loop (no SIGCHLD handler, so no race with
/// other code that waits for children) and reaped with waitid(P_PIDFD).

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/coro.hpp"
#include "weave/streams.hpp"

namespace weave {

namespace detail {
struct ChildState;
}  // namespace detail

/// Where a child's standard stream goes (asyncio's stdin=/stdout=/stderr= arguments). The
/// default inherits the caller's stream; an int is an fd of the caller, duplicated onto the
/// child's stream (the caller keeps its fd).
class Stdio {
 public:
  enum class Kind : unsigned char {
    Inherit,  ///< the caller's stream
    Pipe,     ///< a new pipe, the Process's end of which is stdin_/stdout_/stderr_
    DevNull,  ///< /dev/null
    Stdout,   ///< stderr only: wherever the child's stdout goes
    Fd,       ///< fd() of the caller
  };
  constexpr Stdio() noexcept = default;
  constexpr explicit Stdio(Kind kind) noexcept : kind_(kind) {}
  constexpr Stdio(int fd) noexcept : kind_(Kind::Fd), fd_(fd) {}  // NOLINT: as subprocess's int
  constexpr Kind kind() const noexcept { return kind_; }
  constexpr int fd() const noexcept { return fd_; }

 private:
  Kind kind_ = Kind::Inherit;
  int fd_ = -1;
};

inline constexpr Stdio PIPE{Stdio::Kind::Pipe};
inline constexpr Stdio DEVNULL{Stdio::Kind::DevNull};
inline constexpr Stdio STDOUT{Stdio::Kind::Stdout};

struct SubprocessOptions {
  // Every member has an initializer, so that designated initializers naming only some of them
  // compile without -Wmissing-field-initializers warnings.
  Stdio stdin_{};
  Stdio stdout_{};
  Stdio stderr_{};  ///< may also be STDOUT
  /// The child's working directory; empty: the caller's.
  std::string cwd{};
  /// The child's whole environment; nullopt: the caller's.
  std::optional<std::map<std::string, std::string>> env{};
  /// setsid() in the child (subprocess's start_new_session).
  bool start_new_session = false;
  /// Close every fd but 0, 1, 2 (and pass_fds) in the child (subprocess's close_fds). With false
  /// the child inherits the caller's fds that are not close-on-exec (weave's never are).
  bool close_fds = true;
  /// Fds the child keeps, with the same numbers, close-on-exec or not (subprocess's pass_fds).
  /// As subprocess does, a non-empty pass_fds implies close_fds. Errors: ValueError for a
  /// negative fd; EBADF for one that is not open.
  std::vector<int> pass_fds{};
  /// setpgid(0, process_group) in the child (subprocess's process_group): 0 starts a new
  /// process group whose id is the child's pid.
  std::optional<int> process_group{};
  /// The user and group the child runs as: a name or a decimal id (subprocess's user= and
  /// group=, with setreuid/setregid; the supplementary groups are left as they are, as
  /// subprocess leaves them without extra_groups). Errors: LookupError for an unknown name;
  /// EPERM from a caller without the privilege.
  std::optional<std::string> user{};
  std::optional<std::string> group{};
  /// The child's umask (subprocess's umask; nullopt: the caller's).
  std::optional<unsigned> umask{};
  /// Buffer limit of the stdout_/stderr_ readers (asyncio's `limit`).
  std::size_t limit = std::size_t{64} * 1024;
};

/// asyncio.subprocess.Process: a cheap, copyable handle to one child, bound to the loop that
/// started it.
///
/// When the last handle goes while the child still runs, the child is killed with SIGKILL, as
/// asyncio's subprocess transport does when it is closed or collected; the loop then reaps it
/// when it exits (or, if the loop closes first, close() waits for it). A handle that outlives
/// its loop reaps a still-running child itself, after the same SIGKILL. No zombie is left.
class Process {
 public:
  explicit Process(std::shared_ptr<detail::ChildState> state);

  /// The Process's ends of the pipes, for the streams given as PIPE (asyncio's proc.stdin,
  /// proc.stdout, proc.stderr); empty otherwise. Copies of a Process share them. Closing
  /// stdin_ (close() or write_eof()) gives the child end of file.
  std::optional<StreamWriter> stdin_;
  std::optional<StreamReader> stdout_;
  std::optional<StreamReader> stderr_;

  int pid() const noexcept;
  /// The exit status once the loop has seen the child exit: the exit code, or the negative
  /// number of the signal that killed it (-9 for SIGKILL). nullopt while it runs.
  std::optional<int> returncode() const noexcept;

  /// Waits for the child to exit; returns returncode(). Several waits may be pending at once.
  /// Cancellation: the wait is withdrawn, the child is untouched and can be waited for again.
  /// Beware: with stdout_ or stderr_ a PIPE that nobody reads, a child that writes more than a
  /// pipe buffer never exits (use communicate()).
  /// Errors: RuntimeError when the Process's loop is closed and the child was not reaped.
  Coro<int> wait();
  /// Sends `input` to stdin_ (if it is a PIPE; the input is ignored otherwise), drains and
  /// closes it, reads stdout_ and stderr_ (where they are PIPEs) until end of file, all at once
  /// so that no pipe fills up, then waits for the child to exit. Returns (stdout, stderr); a
  /// stream that is not a PIPE reads as "". A child that exits without reading its input is not
  /// an error (EPIPE and ECONNRESET are ignored, as asyncio ignores BrokenPipeError and
  /// ConnectionResetError).
  /// Cancellation: the reads and the write are withdrawn; what was read so far is lost; part of
  /// `input` may have been written; the child is untouched.
  /// Errors: std::system_error from a read or write; RuntimeError as wait().
  Coro<std::pair<std::string, std::string>> communicate(std::string input = {});

  /// Sends `sig` to the child; does nothing once the child was reaped (as Popen.send_signal).
  /// Sent through the pidfd, so it can never reach another process that reused the pid.
  /// Errors: std::system_error (EINVAL for a bad signal number).
  void send_signal(int sig);
  /// send_signal(SIGTERM).
  void terminate();
  /// send_signal(SIGKILL).
  void kill();

  /// weave's own use (the subprocess transport): the shared child state.
  const std::shared_ptr<detail::ChildState>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::ChildState> state_;
  std::shared_ptr<void> owner_;  ///< shared by the copies; the last one releases the child
};

// ---- the callback layer: EventLoop::subprocess_exec / subprocess_shell -----------------------

class SubprocessTransport;

/// asyncio.SubprocessProtocol. Override what you need; the defaults do nothing. Calls happen on
/// the loop thread: connection_made first; pipe_data_received and pipe_connection_lost per
/// pipe; process_exited once; connection_lost exactly once, last, after the child exited and
/// every pipe closed.
class SubprocessProtocol {
 public:
  virtual ~SubprocessProtocol() = default;
  virtual void connection_made(SubprocessTransport& transport) { (void)transport; }
  /// The child wrote `data` to its stdout (`fd` 1) or stderr (2); valid only during the call.
  virtual void pipe_data_received(int fd, std::string_view data) {
    (void)fd;
    (void)data;
  }
  /// The pipe to the child's `fd` (0, 1 or 2) closed; `exc` is null unless it failed.
  virtual void pipe_connection_lost(int fd, std::exception_ptr exc) {
    (void)fd;
    (void)exc;
  }
  /// The child exited; get_returncode() has its status.
  virtual void process_exited() {}
  virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
  /// The stdin pipe's write buffer went over its high-water mark, and back.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

/// asyncio.SubprocessTransport. The loop keeps it alive until connection_lost.
class SubprocessTransport {
 public:
  virtual ~SubprocessTransport() = default;
  virtual int get_pid() const noexcept = 0;
  /// As Process::returncode().
  virtual std::optional<int> get_returncode() const noexcept = 0;
  /// The transport of the pipe to the child's `fd` (0: write to its stdin; 1, 2: its output),
  /// or nullptr when that stream is not a PIPE.
  virtual Transport* get_pipe_transport(int fd) const noexcept = 0;
  /// As Process::send_signal / terminate / kill.
  virtual void send_signal(int sig) = 0;
  virtual void terminate() = 0;
  virtual void kill() = 0;
  /// Closes the pipes and kills the child (SIGKILL) if it still runs, as asyncio does.
  virtual void close() = 0;
  virtual bool is_closing() const noexcept = 0;
};

using SubprocessProtocolFactory = std::function<std::shared_ptr<SubprocessProtocol>()>;

/// What subprocess_exec / subprocess_shell return: asyncio's (transport, protocol) pair.
struct SubprocessConnection {
  std::shared_ptr<SubprocessTransport> transport;
  std::shared_ptr<SubprocessProtocol> protocol;
};

/// argv[1..] of a child: a std::vector<std::string>, or a braced list of strings
/// (`{"-c", "print(1)"}`). A class rather than the vector because g++ 12 cannot compile a braced
/// list that becomes a std::initializer_list inside a co_await expression ("array used as
/// initializer"); this constructor takes the strings as arguments, which it compiles.
class ProcessArgs {
 public:
  ProcessArgs() = default;
  ProcessArgs(std::vector<std::string> args)  // NOLINT(google-explicit-constructor)
      : args_(std::move(args)) {}
  template <class... S>
  requires(sizeof...(S) > 0 && (std::convertible_to<const S&, std::string_view> && ...))
      ProcessArgs(const S&... args)  // NOLINT(google-explicit-constructor)
      : args_{std::string(std::string_view(args))...} {}

  const std::vector<std::string>& values() const& noexcept { return args_; }
  std::vector<std::string> values() && noexcept { return std::move(args_); }

 private:
  std::vector<std::string> args_;
};

/// asyncio.create_subprocess_exec: runs `program` (looked up in PATH when it has no slash) with
/// `args` (argv[1..]; argv[0] is `program`).
/// Errors: std::system_error with the errno of the failed spawn (ENOENT for a missing program,
/// EACCES, ...; asyncio's FileNotFoundError / PermissionError); ValueError for STDOUT given as
/// stdin_ or stdout_ or a negative fd; RuntimeError outside a running loop.
Coro<Process> create_subprocess_exec(std::string program, ProcessArgs args, SubprocessOptions opts);
/// asyncio.create_subprocess_shell: `/bin/sh -c cmd`. Errors: as create_subprocess_exec.
Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions opts);

// The calls without options are overloads rather than `opts = {}` defaults: g++ 12 destroys a
// defaulted aggregate argument twice when the call sits in a co_await expression.
inline Coro<Process> create_subprocess_exec(std::string program, ProcessArgs args) {
  return create_subprocess_exec(std::move(program), std::move(args), SubprocessOptions());
}
inline Coro<Process> create_subprocess_shell(std::string cmd) {
  return create_subprocess_shell(std::move(cmd), SubprocessOptions());
}

}  // namespace weave

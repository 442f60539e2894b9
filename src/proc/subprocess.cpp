// create_subprocess_exec / create_subprocess_shell and Process.
//
// Spawning (all in the calling thread, before the child exists):
//   - every fd made here is close-on-exec from birth (pipe2/open with O_CLOEXEC), so a child
//     spawned at the same time by another thread inherits none of them;
//   - the fds meant for the child's 0/1/2 are moved to numbers >= 3 first, so that the dup2()s
//     onto 0, 1, 2, done in that order in the child, never overwrite a source still needed;
//   - posix_spawnp (glibc: clone(CLONE_VM|CLONE_VFORK) + exec, safe with threads; exec errors such
//     as ENOENT come back as its return value), with closefrom(3) in the child, an empty signal
//     mask (the loop thread blocks the signals it handles through a signalfd) and SIGPIPE/SIGXFSZ
//     reset to their default;
//   - a child that must change its user, group or umask (posix_spawn has no attribute for them)
//     is started with fork instead: everything it needs (argv, envp, the paths to try, the fds
//     to keep) is prepared before the fork, and the child makes only async-signal-safe calls;
//     an exec failure comes back as its errno through a close-on-exec pipe;
//   - pass_fds: the fds between 3 and the highest one passed that are not passed are closed
//     (an fd already closed is ignored), then everything above it; each passed fd is dup2'ed
//     onto itself, which clears its close-on-exec flag;
//   - pidfd_open(pid) right after: the child cannot be reaped by us before that, and nobody else
//     reaps it unless the program calls waitpid(-1) or ignores SIGCHLD (then its status is lost
//     and reported as 255, as subprocess does).

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/loop_impl.hpp"
#include "net/pipes.hpp"
#include "proc/child_watcher.hpp"
#include "proc/spawn.hpp"
#include "weave/errors.hpp"
#include "weave/subprocess.hpp"
#include "weave/task.hpp"

extern char** environ;

namespace weave {

namespace {

using detail::ChildState;

/// An owned fd.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) noexcept : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

struct SpawnAttrs {
  SpawnAttrs() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttrs(const SpawnAttrs&) = delete;
  SpawnAttrs& operator=(const SpawnAttrs&) = delete;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

void check(int rc, const char* what) {
  if (rc != 0) throw os_error(rc, what);
}

/// A close-on-exec copy of `fd` numbered 3 or more.
Fd high_copy(int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) throw os_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Fd(copy);
}

/// Moves `f` to a number >= 3 if it is one of 0, 1, 2.
Fd lift(Fd f) {
  return f.fd >= 3 ? std::move(f) : high_copy(f.fd);
}

/// The fds of one spawn: what the child gets on 0/1/2 and what the Process keeps.
struct Plumbing {
  Fd child[3];   ///< dup2'ed onto 0, 1, 2 in the child; -1: inherit (or stderr = stdout)
  Fd parent[3];  ///< the Process's pipe ends
  bool stderr_to_stdout = false;
  Fd devnull;

  int dev_null() {
    if (devnull.fd < 0) {
      Fd f(::open("/dev/null", O_RDWR | O_CLOEXEC));
      if (f.fd < 0) throw os_error(errno, "open /dev/null");
      devnull = lift(std::move(f));
    }
    return devnull.fd;
  }

  void plan(int i, const Stdio& s) {
    switch (s.kind()) {
      case Stdio::Kind::Inherit:
        return;
      case Stdio::Kind::Pipe: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) < 0) throw os_error(errno, "pipe2");
        Fd read_end(p[0]), write_end(p[1]);
        Fd& mine = i == 0 ? write_end : read_end;
        Fd& theirs = i == 0 ? read_end : write_end;
        const int flags = ::fcntl(mine.fd, F_GETFL);
        if (::fcntl(mine.fd, F_SETFL, flags | O_NONBLOCK) < 0) throw os_error(errno, "fcntl");
        child[i] = lift(std::move(theirs));
        parent[i] = std::move(mine);
        return;
      }
      case Stdio::Kind::DevNull:
        child[i] = high_copy(dev_null());
        return;
      case Stdio::Kind::Stdout:
        if (i != 2) throw ValueError("STDOUT can only be used for stderr_");
        stderr_to_stdout = true;
        return;
      case Stdio::Kind::Fd:
        if (s.fd() < 0) throw ValueError("invalid fd " + std::to_string(s.fd()) + " for a stream");
        child[i] = high_copy(s.fd());
        return;
    }
  }
};

std::vector<std::string> environment(const SubprocessOptions& opts) {
  std::vector<std::string> env;
  for (const auto& [name, value] : *opts.env) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  p.reserve(strings.size() + 1);
  for (std::string& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

/// The ids of SubprocessOptions::user / group: a decimal id or a name looked up.
bool decimal(const std::string& s, unsigned* out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

uid_t user_id(const std::string& name) {
  unsigned id = 0;
  if (decimal(name, &id)) return static_cast<uid_t>(id);
  passwd entry{}, *found = nullptr;
  std::vector<char> buf(16384);
  const int rc = ::getpwnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
  if (rc != 0) throw os_error(rc, "getpwnam_r");
  if (found == nullptr) throw LookupError("no user named " + name);
  return entry.pw_uid;
}

gid_t group_id(const std::string& name) {
  unsigned id = 0;
  if (decimal(name, &id)) return static_cast<gid_t>(id);
  group entry{}, *found = nullptr;
  std::vector<char> buf(16384);
  const int rc = ::getgrnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
  if (rc != 0) throw os_error(rc, "getgrnam_r");
  if (found == nullptr) throw LookupError("no group named " + name);
  return entry.gr_gid;
}

/// The paths execve tries, in order, as execvp's search of PATH (of the child's environment
/// when it has one).
std::vector<std::string> exec_paths(const std::string& program, const SubprocessOptions& opts) {
  if (program.find('/') != std::string::npos) return {program};
  std::string path = "/bin:/usr/bin";
  if (opts.env) {
    if (auto it = opts.env->find("PATH"); it != opts.env->end()) path = it->second;
  } else if (const char* p = std::getenv("PATH")) {
    path = p;
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    out.push_back((dir.empty() ? std::string(".") : dir) + "/" + program);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

/// What a forked child does before exec, prepared by the parent.
struct ForkPlan {
  std::array<int, 3> stdio{-1, -1, -1};
  bool stderr_to_stdout = false;
  bool new_session = false;
  std::optional<int> process_group;
  const char* cwd = nullptr;
  std::optional<gid_t> gid;
  std::optional<uid_t> uid;
  std::optional<mode_t> mask;
  bool close_fds = true;
  std::vector<int> keep;  ///< sorted: pass_fds and the error pipe, which close_fds spares
  std::vector<int> pass;  ///< the fds whose close-on-exec flag is cleared
  std::vector<char*> paths;
  char** argv = nullptr;
  char** envp = nullptr;
  int error_pipe = -1;
};

/// The forked child: only async-signal-safe calls. Never returns.
[[noreturn]] void run_child(const ForkPlan& p) noexcept {
  int err = 0;
  sigset_t none;
  sigemptyset(&none);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  const auto fail = [&](int e) {
    err = e;
    while (::write(p.error_pipe, &err, sizeof err) < 0 && errno == EINTR) {
    }
    ::_exit(127);
  };
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::sigaction(SIGXFSZ, &dfl, nullptr);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int i = 0; i < 3; ++i) {
    if (p.stdio[i] >= 0 && ::dup2(p.stdio[i], i) < 0) fail(errno);
    if (i == 2 && p.stderr_to_stdout && ::dup2(1, 2) < 0) fail(errno);
  }
  if (p.new_session && ::setsid() < 0) fail(errno);
  if (p.process_group && ::setpgid(0, *p.process_group) < 0) fail(errno);
  if (p.cwd != nullptr && ::chdir(p.cwd) < 0) fail(errno);
  if (p.gid && ::setregid(*p.gid, *p.gid) < 0) fail(errno);
  if (p.uid && ::setreuid(*p.uid, *p.uid) < 0) fail(errno);
  if (p.mask) ::umask(*p.mask);
  if (p.close_fds) {
    unsigned from = 3;
    for (int k : p.keep) {
      if (static_cast<unsigned>(k) > from) ::syscall(SYS_close_range, from, k - 1, 0U);
      from = std::max(from, static_cast<unsigned>(k) + 1);
    }
    ::syscall(SYS_close_range, from, ~0U, 0U);
  }
  for (int fd : p.pass) {
    if (::fcntl(fd, F_SETFD, 0) < 0) fail(errno);
  }
  int exec_err = ENOENT;
  for (char* path : p.paths) {
    ::execve(path, p.argv, p.envp);
    // As execvp: a candidate that exists but cannot be run is remembered, others are skipped.
    if (errno != ENOENT && errno != ENOTDIR) exec_err = errno;
  }
  fail(exec_err);
  ::_exit(127);
}

/// Forks the child of `plan`; returns its pid once it has exec'ed. Errors: the child's errno.
pid_t fork_child(ForkPlan& plan, const char* what) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) throw os_error(errno, "pipe2");
  Fd read_end(p[0]), write_end(p[1]);
  if (write_end.fd < 3) write_end = high_copy(write_end.fd);
  plan.error_pipe = write_end.fd;
  if (plan.close_fds) {
    plan.keep.push_back(plan.error_pipe);
    std::sort(plan.keep.begin(), plan.keep.end());
  }
  const pid_t pid = ::fork();
  if (pid < 0) throw os_error(errno, "fork");
  if (pid == 0) run_child(plan);
  write_end = Fd();
  int err = 0;
  ssize_t n;
  do {
    n = ::read(read_end.fd, &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof err)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw os_error(err, what);
  }
  return pid;
}

}  // namespace

namespace detail {

SpawnedChild spawn_child(EventLoop& loop, std::vector<std::string> argv,
                         const SubprocessOptions& opts) {
  Plumbing io;
  io.plan(0, opts.stdin_);
  io.plan(1, opts.stdout_);
  io.plan(2, opts.stderr_);
  io.devnull = Fd();

  for (int fd : opts.pass_fds) {
    if (fd < 0) throw ValueError("invalid fd " + std::to_string(fd) + " in pass_fds");
    if (::fcntl(fd, F_GETFD) < 0) throw os_error(errno, "pass_fds");
  }
  std::vector<int> pass;  // the passed fds above the standard streams, sorted, once each
  for (int fd : opts.pass_fds) {
    if (fd >= 3) pass.push_back(fd);
  }
  std::sort(pass.begin(), pass.end());
  pass.erase(std::unique(pass.begin(), pass.end()), pass.end());
  const bool close_fds = opts.close_fds || !pass.empty();

  std::vector<char*> args = pointers(argv);
  std::vector<std::string> env_strings;
  std::vector<char*> env;
  if (opts.env) {
    env_strings = environment(opts);
    env = pointers(env_strings);
  }
  pid_t pid = -1;
  if (opts.user || opts.group || opts.umask) {
    ForkPlan plan;
    for (int i = 0; i < 3; ++i) plan.stdio[i] = io.child[i].fd;
    plan.stderr_to_stdout = io.stderr_to_stdout;
    plan.new_session = opts.start_new_session;
    plan.process_group = opts.process_group;
    plan.cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
    if (opts.group) plan.gid = group_id(*opts.group);
    if (opts.user) plan.uid = user_id(*opts.user);
    if (opts.umask) plan.mask = static_cast<mode_t>(*opts.umask);
    plan.close_fds = close_fds;
    plan.keep = pass;
    plan.pass = pass;
    std::vector<std::string> paths = exec_paths(argv[0], opts);
    plan.paths = pointers(paths);
    plan.paths.pop_back();  // no terminating null here
    plan.argv = args.data();
    plan.envp = opts.env ? env.data() : environ;
    pid = fork_child(plan, argv[0].c_str());
  } else {
    SpawnAttrs s;
    for (int i = 0; i < 3; ++i) {
      if (io.child[i].fd >= 0) {
        check(posix_spawn_file_actions_adddup2(&s.actions, io.child[i].fd, i), "posix_spawn");
      }
      if (i == 2 && io.stderr_to_stdout) {
        check(posix_spawn_file_actions_adddup2(&s.actions, 1, 2), "posix_spawn");
      }
    }
    if (close_fds) {
      // glibc ignores EBADF from a close action, so closing the gaps needs no list of open fds.
      int from = 3;
      for (int fd : pass) {
        for (int gap = from; gap < fd; ++gap) {
          check(posix_spawn_file_actions_addclose(&s.actions, gap), "posix_spawn");
        }
        from = fd + 1;
      }
      check(posix_spawn_file_actions_addclosefrom_np(&s.actions, from), "posix_spawn");
      for (int fd : pass) {
        check(posix_spawn_file_actions_adddup2(&s.actions, fd, fd), "posix_spawn");
      }
    }
    if (!opts.cwd.empty()) {
      check(posix_spawn_file_actions_addchdir_np(&s.actions, opts.cwd.c_str()), "posix_spawn");
    }
    sigset_t none, reset;
    sigemptyset(&none);
    sigemptyset(&reset);
    sigaddset(&reset, SIGPIPE);
    sigaddset(&reset, SIGXFSZ);
    check(posix_spawnattr_setsigmask(&s.attr, &none), "posix_spawnattr_setsigmask");
    check(posix_spawnattr_setsigdefault(&s.attr, &reset), "posix_spawnattr_setsigdefault");
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (opts.start_new_session) flags |= POSIX_SPAWN_SETSID;
    if (opts.process_group) {
      flags |= POSIX_SPAWN_SETPGROUP;
      check(posix_spawnattr_setpgroup(&s.attr, *opts.process_group), "posix_spawnattr_setpgroup");
    }
    check(posix_spawnattr_setflags(&s.attr, flags), "posix_spawnattr_setflags");
    const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &s.actions, &s.attr, args.data(),
                                  opts.env ? env.data() : environ);
    if (rc != 0) throw os_error(rc, argv[0].c_str());
  }

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw os_error(err, "pidfd_open");
  }
  auto state = std::make_shared<ChildState>(&loop.impl(), pid, pidfd);
  SpawnedChild child(Process{state});  // from here on, a failure kills and reaps the child
  watch_child(loop.impl(), state);
  for (std::size_t i = 0; i < 3; ++i) child.pipes[i] = io.parent[i].release();
  return child;
}

SpawnedChild::~SpawnedChild() {
  for (int fd : pipes) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace detail

namespace {

Process spawn(std::vector<std::string> argv, const SubprocessOptions& opts) {
  EventLoop& loop = get_running_loop();
  detail::SpawnedChild child = detail::spawn_child(loop, std::move(argv), opts);
  Process& proc = child.process;
  // The pipe streams take their fds over (asyncio's connect_write_pipe/connect_read_pipe).
  if (child.pipes[0] >= 0)
    proc.stdin_ = detail::pipe_writer(loop, std::exchange(child.pipes[0], -1));
  if (child.pipes[1] >= 0) {
    proc.stdout_ = detail::pipe_reader(loop, std::exchange(child.pipes[1], -1), opts.limit);
  }
  if (child.pipes[2] >= 0) {
    proc.stderr_ = detail::pipe_reader(loop, std::exchange(child.pipes[2], -1), opts.limit);
  }
  return proc;
}

}  // namespace

namespace {
struct SpawnRequest {
  std::vector<std::string> argv;
  SubprocessOptions opts;
};

// The coroutine takes its request by unique_ptr, not the options aggregate by value: g++ 12
// mishandles aggregate coroutine parameters built in the caller's co_await expression.
Coro<Process> spawn_when_awaited(std::unique_ptr<SpawnRequest> request) {
  co_return spawn(std::move(request->argv), request->opts);
}
}  // namespace

Coro<Process> create_subprocess_exec(std::string program, ProcessArgs args,
                                     SubprocessOptions opts) {
  std::vector<std::string> argv = std::move(args).values();
  argv.insert(argv.begin(), std::move(program));
  return spawn_when_awaited(
      std::make_unique<SpawnRequest>(SpawnRequest{std::move(argv), std::move(opts)}));
}

Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions opts) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(cmd)};
  return spawn_when_awaited(
      std::make_unique<SpawnRequest>(SpawnRequest{std::move(argv), std::move(opts)}));
}

// ---- Process --------------------------------------------------------------------------------

Process::Process(std::shared_ptr<detail::ChildState> state)
    : state_(state), owner_(nullptr, [s = std::move(state)](void*) mutable noexcept {
        detail::release_child(std::move(s));
      }) {}

int Process::pid() const noexcept {
  return state_->pid;
}
std::optional<int> Process::returncode() const noexcept {
  return state_->returncode;
}

void Process::send_signal(int sig) {
  if (const int err = detail::send_to_child(*state_, sig); err != 0) {
    throw os_error(err, "pidfd_send_signal");
  }
}
void Process::terminate() {
  send_signal(SIGTERM);
}
void Process::kill() {
  send_signal(SIGKILL);
}

Coro<int> Process::wait() {
  std::shared_ptr<ChildState> s = state_;
  if (s->returncode) co_return *s->returncode;
  if (s->loop == nullptr) throw RuntimeError("the event loop of this Process is closed");
  Future<int> exited = s->loop->owner.create_future<int>();
  s->waiters.push_back(exited);
  try {
    co_return co_await exited;
  } catch (const CancelledError&) {
    std::erase_if(s->waiters, [&](const Future<int>& w) { return w.core() == exited.core(); });
    throw;
  }
}

namespace {
/// asyncio's Process._feed_stdin.
Coro<void> feed_stdin(std::optional<StreamWriter> stdin_pipe, std::string input) {
  if (!stdin_pipe) co_return;
  try {
    if (!input.empty()) stdin_pipe->write(input);
    co_await stdin_pipe->drain();
  } catch (const std::system_error& e) {
    // The child exited or closed its stdin without reading everything: not an error.
    if (e.code().value() != EPIPE && e.code().value() != ECONNRESET) throw;
  }
  stdin_pipe->close();
}

/// asyncio's Process._read_stream.
Coro<std::string> read_stream(std::optional<StreamReader> pipe) {
  if (!pipe) co_return std::string();
  co_return co_await pipe->read();
}
}  // namespace

Coro<std::pair<std::string, std::string>> Process::communicate(std::string input) {
  Process self = *this;  // the handle stays valid even if *this is moved meanwhile
  [[maybe_unused]] auto [fed, out, err] =
      co_await gather(feed_stdin(self.stdin_, std::move(input)), read_stream(self.stdout_),
                      read_stream(self.stderr_));
  co_await self.wait();
  co_return std::pair<std::string, std::string>(std::move(out), std::move(err));
}

}  // namespace weave

// See worker_process.hpp.

#include "concurrent/worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "concurrent/wire.hpp"
#include "weave/concurrent.hpp"

extern char** environ;

namespace weave::concurrent::detail {

namespace {

/// RAII for the posix_spawn attribute objects.
struct SpawnSetup {
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

/// This process's environment with kWorkerEnv=fd (and no stale copy of it).
std::vector<std::string> worker_environment(int fd) {
  std::vector<std::string> env;
  std::string prefix = std::string(kWorkerEnv) + "=";
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env.emplace_back(*e);
  }
  env.push_back(prefix + std::to_string(fd));
  return env;
}

pid_t start_process(int child_fd) {
  SpawnSetup s;
  // dup2 onto itself clears close-on-exec in the child only (POSIX 2024, glibc >= 2.29).
  posix_spawn_file_actions_adddup2(&s.actions, child_fd, child_fd);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &all);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> env = worker_environment(child_fd);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string name = program_invocation_name;
  char* argv[] = {name.data(), nullptr};

  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/proc/self/exe", &s.actions, &s.attr, argv, envp.data());
  if (rc != 0) throw os_error(rc, "posix_spawn of a process-pool worker");
  return pid;
}

}  // namespace

std::unique_ptr<WorkerProcess> WorkerProcess::spawn(void (*initializer)()) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    throw os_error(errno, "socketpair for a process-pool worker");
  }
  pid_t pid;
  try {
    pid = start_process(sv[1]);
  } catch (...) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  std::unique_ptr<WorkerProcess> w(new WorkerProcess(pid, sv[0]));
  std::size_t start = begin_frame(w->out_);
  Writer init(w->out_);
  if (initializer) {
    init.write(initializer);
  } else {
    init.write_nil();
  }
  end_frame(w->out_, start);
  return w;
}

WorkerProcess::~WorkerProcess() {
  if (fd_ >= 0) ::close(fd_);
}

std::exception_ptr WorkerProcess::queue_call(const std::shared_ptr<Job>& job) {
  std::size_t start = begin_frame(out_);
  std::exception_ptr error;
  try {
    Writer w(out_);
    job->encode(w);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    out_.resize(start);
    return error;
  }
  end_frame(out_, start);
  inflight.push(job);
  ++calls;
  return nullptr;
}

bool WorkerProcess::flush() {
  while (wants_write()) {
    ssize_t n =
        ::send(fd_, out_.data() + sent_pos_, out_.size() - sent_pos_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;
    }
    sent_pos_ += static_cast<std::size_t>(n);
  }
  out_.clear();
  sent_pos_ = 0;
  return true;
}

bool WorkerProcess::receive() {
  if (read_pos_ > 0 && read_pos_ == in_.size()) {
    in_.clear();
    read_pos_ = 0;
  } else if (read_pos_ > (1U << 16)) {
    in_.erase(0, read_pos_);
    read_pos_ = 0;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof buf) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

bool WorkerProcess::next_reply(std::string_view& payload) {
  return next_frame(in_, read_pos_, payload);
}

int WorkerProcess::reap() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!reaped_) {
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  return status_;
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  return "wait status " + std::to_string(status);
}

}  // namespace weave::concurrent::detail

#pragma once
// The openssl command line as a test peer (s_server, s_client): spawned with posix_spawnp, its
// stdin and stdout on pipes, polled from a coroutine; killed and reaped by the destructor if it
// is still running, so that a failed test leaves neither a process nor an fd behind.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "weave/weave.hpp"

extern char** environ;

namespace weave_test {

/// True when an executable `openssl` is on PATH.
inline bool have_openssl_binary() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/openssl";
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

/// `openssl <args>` with its stdin and stdout on pipes (stderr discarded). Killed and reaped
/// by the destructor if still running, so that a failed test leaves nothing behind.
class OpensslProcess {
 public:
  explicit OpensslProcess(const std::vector<std::string>& args) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> argv_s{"openssl"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, "openssl", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::system_error(rc, std::generic_category(), "posix_spawnp openssl");
    }
    ::fcntl(stdout_, F_SETFL, ::fcntl(stdout_, F_GETFL) | O_NONBLOCK);
  }
  OpensslProcess(const OpensslProcess&) = delete;
  OpensslProcess& operator=(const OpensslProcess&) = delete;
  ~OpensslProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdin_ >= 0) ::close(stdin_);
    if (stdout_ >= 0) ::close(stdout_);
  }

  void write_stdin(std::string_view data) { (void)!::write(stdin_, data.data(), data.size()); }

  /// Reads stdout until `needle` shows (or EOF); returns all read so far.
  weave::Coro<std::string> read_until(std::string_view needle) {
    for (;;) {
      if (output_.find(needle) != std::string::npos) co_return output_;
      char buf[4096];
      const ssize_t n = ::read(stdout_, buf, sizeof buf);
      if (n > 0) {
        output_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        co_return output_;
      } else {
        co_await weave::sleep(std::chrono::milliseconds(5));
      }
    }
  }

  /// The first whole line of stdout that starts with `prefix` (without its newline); empty at
  /// EOF.
  weave::Coro<std::string> read_line(std::string_view prefix) {
    for (;;) {
      const std::size_t at = output_.find(prefix);
      const std::size_t end = at == std::string::npos ? at : output_.find('\n', at);
      if (end != std::string::npos) co_return output_.substr(at, end - at);
      char buf[4096];
      const ssize_t n = ::read(stdout_, buf, sizeof buf);
      if (n > 0) {
        output_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        co_return std::string();
      } else {
        co_await weave::sleep(std::chrono::milliseconds(5));
      }
    }
  }

  /// Waits for the exit; returns the wait status.
  weave::Coro<int> wait() {
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0)
      co_await weave::sleep(std::chrono::milliseconds(5));
    pid_ = -1;
    co_return status;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string output_;
};

}  // namespace weave_test

// `weave pstree PID` and `weave ps PID` of a process holding N pending tasks (1,000,000 by
// default), each waiting on an Event: the wall time of each run, median of 5 interleaved runs,
// against the bar of 2 s for pstree (the issue's). Output goes to a pipe that is read and counted,
// as a terminal or `less` would take it.
//
//   pstree_bench [N]

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

pid_t start(const std::vector<std::string>& args, int out) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, 1);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

/// Runs the tool to its end; returns seconds and counts its output bytes.
double timed(const std::string& command, pid_t target, std::size_t& bytes, int& status) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const auto t0 = Clock::now();
  const pid_t pid = start({WEAVE_TOOL, command, std::to_string(target)}, p[1]);
  ::close(p[1]);
  static char buf[1 << 16];
  bytes = 0;
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) bytes += static_cast<std::size_t>(n);
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
  int p[2];
  if (::pipe(p) != 0) return 1;
  const pid_t target = start({WEAVE_PS_TARGET, "many", std::to_string(n)}, p[1]);
  ::close(p[1]);
  pollfd f{p[0], POLLIN, 0};
  char line[64] = {};
  if (::poll(&f, 1, 120000) <= 0 || ::read(p[0], line, sizeof line - 1) <= 0) {
    std::fprintf(stderr, "pstree_bench: the target did not get ready\n");
    ::kill(target, SIGKILL);
    ::waitpid(target, nullptr, 0);
    return 1;
  }
  std::vector<double> tree, rows;
  std::size_t tree_bytes = 0, ps_bytes = 0;
  int status = 0, failed = 0;
  for (int i = 0; i < 5; ++i) {
    tree.push_back(timed("pstree", target, tree_bytes, status));
    failed += status != 0;
    rows.push_back(timed("ps", target, ps_bytes, status));
    failed += status != 0;
  }
  ::kill(target, SIGKILL);
  ::waitpid(target, nullptr, 0);
  const double bar = 2.0;
  std::printf(
      "tasks=%ld pstree: median %.3f s (min %.3f, max %.3f), %zu bytes; bar %.1f s: "
      "%.2fx of the bar\n",
      n, median(tree), *std::min_element(tree.begin(), tree.end()),
      *std::max_element(tree.begin(), tree.end()), tree_bytes, bar, median(tree) / bar);
  std::printf("tasks=%ld ps:     median %.3f s (min %.3f, max %.3f), %zu bytes\n", n, median(rows),
              *std::min_element(rows.begin(), rows.end()),
              *std::max_element(rows.begin(), rows.end()), ps_bytes);
  if (failed != 0) std::printf("%d run(s) failed\n", failed);
  return failed != 0 ? 1 : 0;
}

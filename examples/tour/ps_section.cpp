// The tour looks at itself from outside: `weave ps` and `weave pstree` run on this process while
// its loop is blocked in a plain waitpid(), as a stuck program's loop would be. The tool reads
// the tasks through the library's table of debug offsets, with no help from the loop.
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "sections.hpp"
#include "weave/weave.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using weave::Coro;

Coro<void> fetch_all() {
  co_await weave::gather(tour::fetch(1000), tour::fetch(2000));
}

Coro<void> consume(weave::Queue<int>& queue) {
  (void)co_await queue.get();
}

/// Runs `weave COMMAND <this pid>` and waits for it without yielding: the loop is blocked, on
/// purpose. Bounded: a tool that does not end in 10 s is killed.
void read_myself(const char* command) {
  const std::string pid = std::to_string(::getpid());
  const char* argv[] = {WEAVE_TOOL_PATH, command, pid.c_str(), nullptr};
  std::fflush(stdout);  // the tool writes to the same stdout
  pid_t child = -1;
  const auto t0 = weave::Clock::now();
  if (::posix_spawn(&child, argv[0], nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    std::printf("(could not start %s)\n", argv[0]);
    return;
  }
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (weave::Clock::now() - t0 > 10s) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      std::printf("(weave %s did not finish in 10 s)\n", command);
      return;
    }
    std::this_thread::sleep_for(1ms);
  }
  std::printf("weave %s read this process in %.0f ms while its loop was blocked\n", command,
              tour::since(t0));
  std::fflush(stdout);
}

}  // namespace

namespace tour {

Coro<void> ps_section() {
  std::puts("\n== from outside: `weave ps` and `weave pstree` of this process, its loop blocked");
  // Where YAMA allows tracing only by ancestors, let the tool (a child) read us.
  ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  std::fflush(stdout);
  weave::Queue<int> queue;
  co_await weave::task_group([&](weave::TaskGroup& tg) -> Coro<void> {
    weave::Task<void> fetcher = tg.create_task(fetch_all(), "fetch_all");
    weave::Task<void> consumer = tg.create_task(consume(queue), "consumer");
    co_await weave::sleep(50ms);  // everyone has been waiting for a while now
    read_myself("ps");
    read_myself("pstree");
    fetcher.cancel();
    consumer.cancel();
  });
}

}  // namespace tour

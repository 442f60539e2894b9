// weave: inspects a running weave process from outside (asyncio 3.14's `python -m asyncio ps`
// and `pstree`), through the table of debug offsets the library exports (src/debug/
// debug_offsets.hpp) and process_vm_readv. The target is not stopped and does nothing for it, so
// a loop blocked in a step or spinning is seen as it is.
//
//   weave ps PID       a row per task
//   weave pstree PID   the await tree; await cycles are listed
//
// Exit status: 0, 1 when the process cannot be inspected (no such process, not a weave process,
// no ptrace permission), 2 on a usage error.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "render.hpp"
#include "snapshot.hpp"
#include "target.hpp"

namespace {

int usage() {
  std::fputs("usage: weave ps PID\n       weave pstree PID\n", stderr);
  return 2;
}

bool parse_pid(const char* s, pid_t& pid) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v <= 0 || v > 0x3fffffff) return false;
  pid = static_cast<pid_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return usage();
  const std::string command = argv[1];
  if (command != "ps" && command != "pstree") return usage();
  pid_t pid = 0;
  if (!parse_pid(argv[2], pid)) {
    std::fprintf(stderr, "weave: not a process id: %s\n", argv[2]);
    return 2;
  }
  static char buffer[1 << 20];
  std::setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
  try {
    weave_tool::Target target(pid);
    const weave_tool::Snapshot snapshot = weave_tool::take_snapshot(target);
    if (command == "ps") {
      weave_tool::print_ps(target, snapshot, stdout);
    } else {
      weave_tool::print_pstree(target, snapshot, stdout);
    }
  } catch (const weave_tool::TargetError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "weave: %s\n", e.message.c_str());
    return 1;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

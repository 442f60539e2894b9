// Finding a weave process's table of debug offsets: /proc/PID/maps lists the mapped files; each
// file mapped from offset 0 is an ELF object whose load bias is that mapping's address minus its
// first segment's; the table is the symbol `weave_debug_offsets`, or the section that holds it
// when the file is stripped. The same files' symbol tables name the code (as symbols.cpp does
// in-process).

#include "target.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>

#include "debug/symbols.hpp"

namespace weave_tool {

namespace dbg = weave::detail::dbg;

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string permission_advice() {
  std::string scope = read_first_line("/proc/sys/kernel/yama/ptrace_scope");
  std::string text =
      "reading another process's memory needs ptrace permission over it: run as the same user "
      "with /proc/sys/kernel/yama/ptrace_scope set to 0 (sysctl kernel.yama.ptrace_scope=0), or "
      "as root / with CAP_SYS_PTRACE";
  if (!scope.empty()) text += " (ptrace_scope is " + scope + " here)";
  return text;
}

}  // namespace

Target::Target(pid_t pid) : pid_(pid), memory_(pid) {
  struct stat st {};
  if (pid <= 0 || ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0) {
    throw TargetError{"no process with pid " + std::to_string(pid)};
  }
  load_maps();
  dbg::sort_symbols(symbols_);
  const std::string comm = read_first_line("/proc/" + std::to_string(pid) + "/comm");
  if (tables_.empty()) {
    throw TargetError{"pid " + std::to_string(pid) + " (" + comm +
                      ") is not a weave process: none of its mapped files has the "
                      "weave_debug_offsets table"};
  }
  read_table(tables_.front());
}

void Target::load_maps() {
  const std::string path = "/proc/" + std::to_string(pid_) + "/maps";
  std::ifstream in(path);
  if (!in) {
    if (errno == EACCES || errno == EPERM)
      throw TargetError{"cannot read " + path + ": " + permission_advice()};
    throw TargetError{"no process with pid " + std::to_string(pid_)};
  }
  std::set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long start = 0, end = 0, offset = 0;
    char perms[8] = {};
    int name_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &offset,
                    &name_at) < 4 ||
        name_at <= 0) {
      continue;
    }
    const std::string file = line.substr(static_cast<std::size_t>(name_at));
    if (offset != 0 || file.empty() || file[0] != '/' || !seen.insert(file).second) continue;
    std::optional<dbg::ElfFile> elf = dbg::ElfFile::open(file.c_str());
    if (!elf) continue;
    const std::uint64_t bias = start - elf->base_vaddr();
    elf->add_functions(bias, symbols_);
    std::optional<std::uint64_t> table = elf->find_symbol("weave_debug_offsets");
    if (!table) table = elf->find_section(WEAVE_DEBUG_OFFSETS_SECTION);
    if (table) tables_.push_back(bias + *table);
  }
}

void Target::read_table(std::uint64_t address) {
  const std::string who = "pid " + std::to_string(pid_);
  dbg::DebugOffsets head{};
  const std::size_t prefix = offsetof(dbg::DebugOffsets, loops);
  if (!memory_.read_fresh(address, &head, prefix)) {
    const int e = memory_.last_errno();
    if (e == EPERM || e == EACCES) {
      throw TargetError{"no permission to read the memory of " + who + ": " + permission_advice()};
    }
    if (e == ESRCH) throw TargetError{"no process with pid " + std::to_string(pid_)};
    throw TargetError{"cannot read the weave_debug_offsets table of " + who + ": " +
                      std::strerror(e)};
  }
  if (std::memcmp(head.cookie, dbg::kDebugOffsetsCookie, sizeof head.cookie) != 0) {
    throw TargetError{who + " has a weave_debug_offsets table that is not filled in (the program " +
                      "has not finished starting, or is not a weave process)"};
  }
  if (head.version != dbg::kDebugOffsetsVersion || head.size != sizeof(dbg::DebugOffsets)) {
    throw TargetError{who + " has weave debug offsets version " + std::to_string(head.version) +
                      " (size " + std::to_string(head.size) + "); this program reads version " +
                      std::to_string(dbg::kDebugOffsetsVersion) + " (size " +
                      std::to_string(sizeof(dbg::DebugOffsets)) + ")"};
  }
  if (!memory_.read_fresh(address, &offsets_, sizeof offsets_)) {
    throw TargetError{"cannot read the weave_debug_offsets table of " + who};
  }
}

const std::string& Target::frame_name(std::uint64_t address) {
  auto [it, fresh] = names_.try_emplace(address);
  if (fresh) {
    const char* mangled = dbg::find_function(symbols_, address);
    it->second = mangled != nullptr ? dbg::coroutine_name(dbg::demangle(mangled))
                                    : dbg::hex_address(address);
  }
  return it->second;
}

}  // namespace weave_tool

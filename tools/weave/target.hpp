#pragma once
// A weave process seen from outside: its mapped ELF files (for code names and for the table of
// debug offsets the library exports), its memory, and the checked table.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "debug/debug_offsets.hpp"
#include "debug/elf.hpp"
#include "remote.hpp"

namespace weave_tool {

/// Why a target cannot be inspected; the message is for the user.
struct TargetError {
  std::string message;
};

class Target {
 public:
  /// Opens `pid`; throws TargetError (no such process, not a weave process, no permission, an
  /// unknown table version).
  explicit Target(pid_t pid);

  pid_t pid() const { return pid_; }
  Remote& memory() { return memory_; }
  const weave::detail::dbg::DebugOffsets& offsets() const { return offsets_; }
  /// The coroutine's name for a frame whose resume function is at `address` (demangled, its
  /// return type cut off), or the address in hex.
  const std::string& frame_name(std::uint64_t address);

 private:
  void load_maps();
  void read_table(std::uint64_t address);

  pid_t pid_;
  Remote memory_;
  std::vector<weave::detail::dbg::ElfSymbol> symbols_;
  std::vector<std::uint64_t> tables_;  ///< addresses of weave_debug_offsets found
  weave::detail::dbg::DebugOffsets offsets_{};
  std::unordered_map<std::uint64_t, std::string> names_;
};

}  // namespace weave_tool

#pragma once
// Reading another process's memory with process_vm_readv, without stopping it. Reads go through
// a direct-mapped cache of aligned blocks (16 MiB in all, reused, so that a big walk does not
// fault in fresh memory for every block), so that walking a million tasks costs thousands of
// system calls, not millions; a snapshot attempt starts with an empty cache (clear()). A failed
// read is a value (false / nullopt), never a crash: the target may free or move what the reader
// follows.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace weave_tool {

/// Whether `a` can be a pointer to an object of alignment `align` in a user address space.
inline bool plausible(std::uint64_t a, std::uint64_t align = 8) {
  return a >= 4096 && a < (std::uint64_t{1} << 47) && a % align == 0;
}

class Remote {
 public:
  explicit Remote(pid_t pid) : pid_(pid) {}

  /// Copies `n` bytes at `addr` through the cache.
  bool read(std::uint64_t addr, void* out, std::size_t n);
  /// Copies `n` bytes at `addr` now, past the cache (generation counts).
  bool read_fresh(std::uint64_t addr, void* out, std::size_t n);

  template <class T>
  std::optional<T> get(std::uint64_t addr) {
    T v;
    if (!read(addr, &v, sizeof v)) return std::nullopt;
    return v;
  }
  template <class T>
  std::optional<T> get_fresh(std::uint64_t addr) {
    T v;
    if (!read_fresh(addr, &v, sizeof v)) return std::nullopt;
    return v;
  }
  /// A NUL-terminated string of at most `max` bytes; nullopt when unreadable or unterminated.
  std::optional<std::string> c_string(std::uint64_t addr, std::size_t max);

  void clear() {
    for (Block& b : blocks_) b.base = kNoBlock;
  }
  /// errno of the last failed system call (EPERM: no ptrace permission; ESRCH: gone).
  int last_errno() const { return errno_; }

 private:
  static constexpr std::size_t kBlock = 64 * 1024;
  static constexpr std::size_t kBlocks = 256;
  static constexpr std::uint64_t kNoBlock = 1;  ///< never a block's (aligned) address
  struct Block {
    std::uint64_t base = kNoBlock;
    std::vector<unsigned char> data;
    std::size_t valid = 0;  ///< bytes read from the block's start
  };
  long raw(std::uint64_t addr, void* out, std::size_t n);
  const Block& block(std::uint64_t base);

  pid_t pid_;
  int errno_ = 0;
  std::vector<Block> blocks_ = std::vector<Block>(kBlocks);
};

}  // namespace weave_tool

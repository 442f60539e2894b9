// process_vm_readv through a block cache (remote.hpp).

#include "remote.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

namespace weave_tool {

long Remote::raw(std::uint64_t addr, void* out, std::size_t n) {
  iovec local{out, n};
  iovec remote{reinterpret_cast<void*>(addr), n};
  const ssize_t got = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  if (got < 0) errno_ = errno;
  return got;
}

const Remote::Block& Remote::block(std::uint64_t base) {
  Block& b = blocks_[(base / kBlock) % kBlocks];
  if (b.base != base) {
    b.data.resize(kBlock);
    const long got = raw(base, b.data.data(), kBlock);
    b.valid = got > 0 ? static_cast<std::size_t>(got) : 0;
    b.base = base;
  }
  return b;
}

bool Remote::read(std::uint64_t addr, void* out, std::size_t n) {
  if (addr == 0 || addr + n < addr) return false;
  auto* dst = static_cast<unsigned char*>(out);
  while (n > 0) {
    const std::uint64_t base = addr & ~std::uint64_t{kBlock - 1};
    const std::size_t at = addr - base;
    const std::size_t take = std::min(n, kBlock - at);
    const Block& b = block(base);
    if (at + take > b.valid) {
      // The block's start is unmapped (or it ends early): ask for exactly these bytes.
      return read_fresh(addr, dst, n);
    }
    std::memcpy(dst, b.data.data() + at, take);
    dst += take;
    addr += take;
    n -= take;
  }
  return true;
}

bool Remote::read_fresh(std::uint64_t addr, void* out, std::size_t n) {
  if (addr == 0 || addr + n < addr) return false;
  return raw(addr, out, n) == static_cast<long>(n);
}

std::optional<std::string> Remote::c_string(std::uint64_t addr, std::size_t max) {
  std::string s;
  char c = 0;
  for (std::size_t i = 0; i < max; ++i) {
    if (!read(addr + i, &c, 1)) return std::nullopt;
    if (c == '\0') return s;
    s += c;
  }
  return std::nullopt;
}

}  // namespace weave_tool

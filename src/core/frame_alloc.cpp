// Per-thread free lists of coroutine frames by 8-byte size class. A frame freed on another
// thread joins that thread's lists (frames are plain memory, so this is safe); memory is never
// given back, which is the usual trade of a pool: a million tasks' worth stays reserved for the
// next million. Frames above kMaxPooledFrame bytes go to operator new.
//
// Alignment: a frame's size is a multiple of its alignment (sizeof always is, and both compilers
// pass the frame's padded size). A size that is an odd multiple of 8 therefore belongs to a frame
// aligned to 8 at most, and gets an 8-aligned block; every other size gets a 16-aligned one, as
// operator new would give. So a 168-byte frame costs 168 bytes, not 176: for a million idle tasks
// that is 8 MB.
//
// Slabs grow geometrically, 64 KiB first, up to 2 MiB: a program with a few tasks keeps a small
// footprint, and one that spawns a million maps a slab every 2 MiB (see new_slab). (Slabs
// advised as transparent huge pages were tried: faster when the pages were warm, but on a shared
// VM first-touch of fresh huge pages cost more than it saved, and a benchmark process always
// starts cold.)

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#include "weave/detail/frame_alloc.hpp"

namespace weave::detail {

#ifndef WEAVE_NO_FRAME_POOL

namespace {
constexpr std::size_t kFirstSlab = std::size_t{64} * 1024;
constexpr std::size_t kLastSlab = std::size_t{2} * 1024 * 1024;

// A slab is mapped with its pages already present: one system call faults in what a spawn
// storm would otherwise fault in a page at a time (a trap per 4 KiB: 49,000 of them for a
// million tasks, about a sixth of the time it takes to spawn them). The cost is that the slab
// being carved is resident in full, 2 MiB at most.
void* new_slab(std::size_t bytes) {
  void* slab = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (slab == MAP_FAILED) throw std::bad_alloc();
  return slab;
}

/// The slab a thread carves new frames from.
struct Slab {
  char* bump = nullptr;  ///< the unused tail of the current slab
  char* bump_end = nullptr;
  std::size_t next_slab = kFirstSlab;
};
thread_local Slab t_slab;
}  // namespace

constinit thread_local FrameLists t_frame_lists{};

void* carve_frame(std::size_t cls) {
  const std::size_t bytes = cls * kFrameGranule;
  Slab& s = t_slab;
  // 16-aligned unless the size is an odd multiple of 8 (see the file comment); the skipped
  // 8 bytes, if any, are lost.
  if (bytes % 16 == 0 && reinterpret_cast<std::uintptr_t>(s.bump) % 16 != 0) s.bump += 8;
  if (s.bump == nullptr || static_cast<std::size_t>(s.bump_end - s.bump) < bytes) {
    // The slab's tail is abandoned; slabs are never freed (see the file comment).
    s.bump = static_cast<char*>(new_slab(s.next_slab));
    s.bump_end = s.bump + s.next_slab;
    if (s.next_slab < kLastSlab) s.next_slab *= 2;
  }
  void* p = s.bump;
  s.bump += bytes;
  return p;
}

#endif

}  // namespace weave::detail

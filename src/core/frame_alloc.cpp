// Per-thread free lists of coroutine frames by 8-byte size class. A frame freed on another
// thread joins that thread's lists (frames are plain memory, so this is safe); memory is never
// given back, which is the usual trade of a pool: a million tasks' worth stays reserved for the
// next million. Frames above kMaxPooled bytes go to operator new.
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

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEAVE_NO_FRAME_POOL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEAVE_NO_FRAME_POOL 1
#endif
#endif

namespace weave::detail {

#ifdef WEAVE_NO_FRAME_POOL

void* allocate_frame(std::size_t size) {
  return ::operator new(size);
}
void deallocate_frame(void* p, std::size_t) noexcept {
  ::operator delete(p);
}

#else

namespace {
constexpr std::size_t kGranule = 8;
constexpr std::size_t kMaxPooled = 1024;
constexpr std::size_t kClasses = kMaxPooled / kGranule;
constexpr std::size_t kFirstSlab = 64 * 1024;
constexpr std::size_t kLastSlab = 2 * 1024 * 1024;

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

struct FreeFrame {
  FreeFrame* next;
};

struct FramePool {
  FreeFrame* free[kClasses + 1] = {};
  char* bump = nullptr;  ///< the unused tail of the current slab
  char* bump_end = nullptr;
  std::size_t next_slab = kFirstSlab;

  // Out of line, so that the pop from a free list stays a few instructions without spills.
  [[gnu::noinline]] void* carve(std::size_t bytes) {
    // 16-aligned unless the size is an odd multiple of 8 (see the file comment); the skipped
    // 8 bytes, if any, are lost.
    if (bytes % 16 == 0 && reinterpret_cast<std::uintptr_t>(bump) % 16 != 0) bump += 8;
    if (bump == nullptr || static_cast<std::size_t>(bump_end - bump) < bytes) {
      // The slab's tail is abandoned; slabs are never freed (see the file comment).
      bump = static_cast<char*>(new_slab(next_slab));
      bump_end = bump + next_slab;
      if (next_slab < kLastSlab) next_slab *= 2;
    }
    void* p = bump;
    bump += bytes;
    return p;
  }
};

thread_local FramePool t_pool;
}  // namespace

void* allocate_frame(std::size_t size) {
  const std::size_t cls = (size + kGranule - 1) / kGranule;
  if (cls > kClasses) return ::operator new(size);
  FramePool& pool = t_pool;
  if (FreeFrame* f = pool.free[cls]) {
    pool.free[cls] = f->next;
    return f;
  }
  return pool.carve(cls * kGranule);
}

void deallocate_frame(void* p, std::size_t size) noexcept {
  const std::size_t cls = (size + kGranule - 1) / kGranule;
  if (cls > kClasses) {
    ::operator delete(p);
    return;
  }
  FramePool& pool = t_pool;
  auto* f = static_cast<FreeFrame*>(p);
  f->next = pool.free[cls];
  pool.free[cls] = f;
}

#endif

}  // namespace weave::detail

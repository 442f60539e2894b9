// Per-thread free lists of coroutine frames by 16-byte size class. A frame freed on another
// thread joins that thread's lists (frames are plain memory, so this is safe); memory is never
// given back, which is the usual trade of a pool: a million tasks' worth stays reserved for the
// next million. Frames above kMaxPooled bytes go to operator new.

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
constexpr std::size_t kGranule = 16;
constexpr std::size_t kMaxPooled = 1024;
constexpr std::size_t kClasses = kMaxPooled / kGranule;
constexpr std::size_t kSlab = 64 * 1024;

struct FreeFrame {
  FreeFrame* next;
};

struct FramePool {
  FreeFrame* free[kClasses + 1] = {};
  char* bump = nullptr;  ///< the unused tail of the current slab
  char* bump_end = nullptr;

  void* carve(std::size_t bytes) {
    if (static_cast<std::size_t>(bump_end - bump) < bytes) {
      // The slab's tail is abandoned; slabs are never freed (see the file comment).
      bump = static_cast<char*>(::operator new(kSlab));
      bump_end = bump + kSlab;
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

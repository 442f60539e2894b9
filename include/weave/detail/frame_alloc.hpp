#pragma once
// Coroutine frames come from per-thread free lists by size class instead of malloc: spawning a
// task is then a pop from a list, and a million idle tasks cost their frames and nothing more
// (no malloc header, 16-byte rounding). Memory freed to a thread's lists stays there for reuse.
// Sanitizer builds use plain operator new so that use-after-free is still caught.
//
// The pop and the push are inline: a frame's size is a constant where its coroutine is called,
// so the size class folds away and what is left is a load and a store of the thread's list.

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEAVE_NO_FRAME_POOL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEAVE_NO_FRAME_POOL 1
#endif
#endif

namespace weave::detail {

inline constexpr std::size_t kFrameGranule = 8;
inline constexpr std::size_t kMaxPooledFrame = 1024;  ///< larger frames go to operator new
inline constexpr std::size_t kFrameClasses = kMaxPooledFrame / kFrameGranule;

struct FreeFrame {
  FreeFrame* next;
};
/// A thread's free frames, by size class (frame_alloc.cpp defines it). Constant-initialised and
/// trivially destructible, so that a read is a plain TLS access with no wrapper call.
struct FrameLists {
  FreeFrame* free[kFrameClasses + 1];
};
extern constinit thread_local FrameLists t_frame_lists;

/// A frame of class `cls` when its list is empty: carved from the thread's slab.
void* carve_frame(std::size_t cls);

inline void* allocate_frame(std::size_t size) {
#ifdef WEAVE_NO_FRAME_POOL
  return ::operator new(size);
#else
  const std::size_t cls = (size + kFrameGranule - 1) / kFrameGranule;
  if (cls > kFrameClasses) return ::operator new(size);
  FrameLists& lists = t_frame_lists;
  if (FreeFrame* f = lists.free[cls]) [[likely]] {
    lists.free[cls] = f->next;
    return f;
  }
  return carve_frame(cls);
#endif
}

inline void deallocate_frame(void* p, std::size_t size) noexcept {
#ifdef WEAVE_NO_FRAME_POOL
  (void)size;
  ::operator delete(p);
#else
  const std::size_t cls = (size + kFrameGranule - 1) / kFrameGranule;
  if (cls > kFrameClasses) {
    ::operator delete(p);
    return;
  }
  FrameLists& lists = t_frame_lists;
  auto* f = static_cast<FreeFrame*>(p);
  f->next = lists.free[cls];
  lists.free[cls] = f;
#endif
}

}  // namespace weave::detail

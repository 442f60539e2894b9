#pragma once
// Coroutine frames come from per-thread free lists by size class instead of malloc: spawning a
// task is then a pop from a list, and a million idle tasks cost their frames and nothing more
// (no malloc header, 16-byte rounding). Memory freed to a thread's lists stays there for reuse.
// Sanitizer builds use plain operator new so that use-after-free is still caught.

#include <cstddef>

namespace weave::detail {

void* allocate_frame(std::size_t size);
void deallocate_frame(void* p, std::size_t size) noexcept;

}  // namespace weave::detail

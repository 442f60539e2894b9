#pragma once
// Nodes for call_soon/call_later callbacks, recycled through a free list so that scheduling a
// callback allocates nothing once the pool is warm. A Handle names a node plus the generation it
// was issued for; recycling bumps the generation, so a stale Handle's cancel() is a no-op.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/timer_queue.hpp"
#include "weave/contextvars.hpp"
#include "weave/detail/small_function.hpp"

namespace weave::detail {

class LoopImpl;
void run_handle(CallbackNode* node);

struct HandleNode : TimerNode {
  static constexpr std::uint8_t kCancelled = 1;  ///< Node::flags: do not run
  static constexpr std::uint8_t kRunning = 2;    ///< Node::flags: `fn` is executing now
  HandleNode() noexcept : TimerNode(&run_handle) {}
  SmallFunction fn;
  std::uintptr_t context = 0;  ///< the context it runs in (contextvars.hpp); 0: empty
  LoopImpl* owner = nullptr;
  std::uint32_t generation = 0;
  HandleNode* next_free = nullptr;
};

class HandlePool {
 public:
  explicit HandlePool(LoopImpl* owner) noexcept : owner_(owner) {}
  HandleNode* acquire() {
    if (free_ == nullptr) grow();
    HandleNode* n = free_;
    free_ = n->next_free;
    n->flags = 0;
    return n;
  }
  void recycle(HandleNode* n) noexcept {
    n->fn.reset();
    if (n->context != 0) ctx_release(std::exchange(n->context, 0));
    ++n->generation;
    n->next_free = free_;
    free_ = n;
  }

 private:
  void grow() {
    constexpr std::size_t kChunk = 64;
    chunks_.push_back(std::make_unique<HandleNode[]>(kChunk));
    HandleNode* chunk = chunks_.back().get();
    for (std::size_t i = 0; i < kChunk; ++i) {
      chunk[i].owner = owner_;
      recycle(&chunk[i]);
    }
  }
  LoopImpl* owner_;
  std::vector<std::unique_ptr<HandleNode[]>> chunks_;
  HandleNode* free_ = nullptr;
};

}  // namespace weave::detail

// The loop's list of started async generators (asyncio's loop._asyncgens and its firstiter
// hook), and shutdown_asyncgens(), which closes the ones still open when a program ends.

#include "core/loop_impl.hpp"
#include "weave/generator.hpp"
#include "weave/task.hpp"

namespace weave::detail {

void asyncgen_first_iter(AsyncGenLink* g) noexcept {
  LoopImpl* l = running_impl();
  if (l == nullptr || g->loop != nullptr) return;
  g->loop = l;
  g->prev = nullptr;
  g->next = l->asyncgens;
  if (l->asyncgens != nullptr) l->asyncgens->prev = g;
  l->asyncgens = g;
}

void asyncgen_forget(AsyncGenLink* g) noexcept {
  LoopImpl* l = g->loop;
  if (l == nullptr) return;
  if (g->prev != nullptr) {
    g->prev->next = g->next;
  } else {
    l->asyncgens = g->next;
  }
  if (g->next != nullptr) g->next->prev = g->prev;
  g->loop = nullptr;
  g->prev = g->next = nullptr;
}

void LoopImpl::detach_asyncgens() noexcept {
  while (asyncgens != nullptr) asyncgen_forget(asyncgens);
}

}  // namespace weave::detail

namespace weave {

// One at a time, each taken off the list just before its close: a generator destroyed meanwhile
// has left the list by itself, so no close ever reaches a freed frame.
Coro<void> EventLoop::shutdown_asyncgens() {
  detail::LoopImpl& l = impl();
  while (detail::AsyncGenLink* g = l.asyncgens) {
    detail::asyncgen_forget(g);
    try {
      co_await g->close(g);
    } catch (const CancelledError&) {
      throw;
    } catch (...) {
      call_exception_handler({"an error occurred during closing of asynchronous generator",
                              std::current_exception(), std::nullopt});
    }
  }
}

}  // namespace weave

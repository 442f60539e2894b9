#pragma once
/// \file coro.hpp
/// Coro<T>: an `async def` coroutine. Lazy (nothing runs until it is awaited or made a task),
/// move-only and [[nodiscard]]. `co_await f()` runs f inline in the current task by symmetric
/// transfer: no scheduling, no stack growth however deep the chain.
///
/// Every Coro frame embeds the state a task needs (detail::TaskCore), so that create_task() turns
/// the frame itself into the task: one allocation per task, from a per-thread frame pool.

#include <coroutine>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "weave/detail/frame_alloc.hpp"
#include "weave/detail/future_core.hpp"

namespace weave {

template <class T = void>
class Coro;

namespace detail {

// A Coro<void> with no frame: asyncio's bare yield, what sleep(0s) returns (asyncio special-cases
// it too, with its __sleep0). Awaiting it queues the task for the next iteration directly; a frame
// per yield cost most of a yield's time and, with a million tasks yielding at once, 150 MB. Its
// handle holds this tag's address instead of a frame's and is never resumed or destroyed; where a
// real frame is needed (create_task, release()), yield_frame() makes one.
inline constexpr char kYieldTag = 0;
inline void* yield_tag() noexcept {
  return const_cast<char*>(&kYieldTag);
}
/// Suspends the current task for one iteration, to resume in `leaf` (task.cpp). Errors:
/// RuntimeError outside a task.
void yield_now(std::coroutine_handle<> leaf);
/// A coroutine that yields once: the frame for a frameless yield that must become a task.
Coro<void> yield_frame();

struct PromiseBase : TaskCore {
  // No pointer to the promise in here: the awaiter lives in every frame, and 8 bytes per frame
  // are 8 MB for a million tasks. The task comes from the thread's current task instead.
  struct InitialAwaiter {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    // A task cancelled before its first step never runs its body (asyncio's must_cancel). A
    // task's root is first resumed by its first step, with the task current and not started; a
    // nested Coro starts inside a started task and is no cancellation point.
    void await_resume() const {
      TaskCore* t = current_task_core();
      if (t != nullptr && (t->flags & fflag::kStarted) == 0) {
        t->flags |= fflag::kStarted;
        checkpoint(t);
      }
    }
  };

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      PromiseBase& p = h.promise();
      if (p.is_task()) {
        task_finish(&p);  // may destroy the frame: touch nothing after it
        return std::noop_coroutine();
      }
      std::coroutine_handle<> parent = p.continuation();
      if (!parent) return std::noop_coroutine();
      if (TaskCore* t = current_task_core()) t->leaf = parent;  // the running frame, for graphs
      return parent;
    }
    void await_resume() const noexcept {}
  };

  InitialAwaiter initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }
};

template <class T>
struct Promise : PromiseBase {
  static_assert(alignof(T) <= alignof(TaskCore),
                "over-aligned coroutine results are not supported");
  static_assert(!std::is_reference_v<T>, "Coro<T&> is not supported; return a pointer");

  Promise() noexcept = default;
  ~Promise() {
    if ((flags & fflag::kHasValue) != 0) value()->~T();
  }
  Coro<T> get_return_object() noexcept;

  template <class U = T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    ::new (static_cast<void*>(storage_)) T(std::forward<U>(v));
    flags |= fflag::kHasValue;
  }

  T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage_)); }

  /// The result for the one awaiter of a nested Coro: moved out.
  T take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value());
  }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

template <>
struct Promise<void> : PromiseBase {
  Coro<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Coro {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Coro() noexcept = default;
  explicit Coro(Handle h) noexcept : h_(h) {}
  Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      drop();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Coro(const Coro&) = delete;
  Coro& operator=(const Coro&) = delete;
  ~Coro() { drop(); }

  /// The frameless yield (detail::yield_tag): only sleep(0s) makes one.
  static Coro yield() noexcept requires std::is_void_v<T> {
    return Coro(Handle::from_address(detail::yield_tag()));
  }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// Gives up ownership of the frame (create_task takes it); a frameless yield gets one first.
  Handle release() {
    if constexpr (std::is_void_v<T>) {
      if (is_yield(h_)) {
        h_ = {};
        return detail::yield_frame().release();
      }
    }
    return std::exchange(h_, {});
  }

  struct Awaiter {
    Handle h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) {
      if constexpr (std::is_void_v<T>) {
        if (is_yield(h)) {
          detail::yield_now(parent);
          return std::noop_coroutine();
        }
      }
      h.promise().link_ = parent.address();
      if (detail::TaskCore* t = detail::current_task_core()) t->leaf = h;  // see TaskCore::leaf
      return h;
    }
    T await_resume() {
      if constexpr (std::is_void_v<T>) {
        if (is_yield(h)) return detail::checkpoint(detail::current_task_core());
      }
      return h.promise().take();
    }
  };

  /// Runs the coroutine inline; its result or exception comes back here. A Coro is awaited once.
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{h_}; }

 private:
  static bool is_yield(Handle h) noexcept {
    if constexpr (std::is_void_v<T>) {
      return h.address() == detail::yield_tag();
    } else {
      return false;
    }
  }
  static bool owns_frame(Handle h) noexcept { return h && !is_yield(h); }
  void drop() noexcept {
    if (!owns_frame(h_)) return;
    // Awaiting links the frame to its awaiter; create_task takes it from us. Neither happened:
    // the body never ran.
    if (h_.promise().link_ == nullptr) [[unlikely]]
      detail::coro_never_awaited(h_.address());
    h_.destroy();
  }

  Handle h_;
};

namespace detail {
template <class T>
Coro<T> Promise<T>::get_return_object() noexcept {
  return Coro<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Coro<void> Promise<void>::get_return_object() noexcept {
  return Coro<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace weave

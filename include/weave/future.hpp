#pragma once
/// \file future.hpp
/// Future<T>: asyncio.Future. Bound to one loop and not thread-safe (see concurrent::Future for
/// that); a cheap copyable handle to shared state. Awaiting it suspends the task until it is done.

#include <exception>
#include <functional>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave {

namespace detail {

/// A heap-allocated future (not a task): knows how to delete itself.
struct FutureBox : FutureCore {
  using DestroyFn = void (*)(FutureBox*) noexcept;
  FutureBox(EventLoop* loop, DestroyFn destroy) noexcept
      : FutureCore(NodeKind::Callback), destroy_fn(destroy) {
    link_ = loop;
  }
  DestroyFn destroy_fn;
};

template <class T>
struct FutureImpl : FutureBox {
  /// `d` frees the whole object: a derived future (wrap_future's) passes its own.
  explicit FutureImpl(EventLoop* loop, DestroyFn d = &destroy) noexcept : FutureBox(loop, d) {}
  ~FutureImpl() {
    if ((flags & fflag::kHasValue) != 0) value()->~T();
  }
  T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  static void destroy(FutureBox* b) noexcept { delete static_cast<FutureImpl*>(b); }
  alignas(T) unsigned char storage[sizeof(T)];
};

template <>
struct FutureImpl<void> : FutureBox {
  explicit FutureImpl(EventLoop* loop, DestroyFn d = &destroy) noexcept : FutureBox(loop, d) {}
  static void destroy(FutureBox* b) noexcept { delete static_cast<FutureImpl*>(b); }
};

/// A stored result as result() and co_await hand it out: a copy, so that it can be read again;
/// a move-only value is moved out instead, so it can be taken once.
template <class T>
T hand_out(T& stored) {
  if constexpr (std::is_copy_constructible_v<T>) {
    return stored;
  } else {
    return std::move(stored);
  }
}

/// Drops one reference to any future or task.
void release_any(FutureCore* f) noexcept;
/// Queues the user callback `node` when `f` is done (at once if it is); the node holds a
/// reference to `f` from then until it ran (see UserCallback). Errors: RuntimeError (the node is
/// freed) when `f` is done and its loop is closed or gone.
void add_done_waiter(FutureCore* f, CallbackNode* node);
std::size_t remove_done_waiter(FutureCore* f, CallbackId id) noexcept;
/// Throws InvalidStateError unless the future is pending.
void require_pending(FutureCore* f);
/// Throws InvalidStateError unless the future is done.
void require_done(FutureCore* f);

/// A user's done callback: a heap node that runs `fn(handle)` once, then frees itself. It holds
/// a reference to its future from the moment it is queued (future_complete) until it ran; a
/// future destroyed while still pending drops its unqueued callbacks through `drop`.
struct UserCallbackBase : CallbackNode {
  using DropFn = void (*)(UserCallbackBase*) noexcept;
  UserCallbackBase(Fn run, DropFn d, FutureCore* o) noexcept
      : CallbackNode(run), drop(d), owner(o) {
    flags = kUserCallbackFlag;
  }
  static constexpr std::uint8_t kUserCallbackFlag = 0x80;
  DropFn drop;
  FutureCore* owner;
  /// For call graphs: the future this callback completes on the owner's behalf (a TaskGroup's
  /// parent task, shield's outer future), which thus awaits the owner; the tasks themselves
  /// carry no such pointer (8 bytes in every frame).
  FutureCore* awaiter = nullptr;
};

/// Names `awaiter` as the one awaiting the future that callback `id` was added to (see above).
inline void set_callback_awaiter(std::uintptr_t id, FutureCore* awaiter) noexcept {
  reinterpret_cast<UserCallbackBase*>(id)->awaiter = awaiter;
}

template <class HandleT>
struct UserCallback : UserCallbackBase {
  UserCallback(FutureCore* o, std::function<void(HandleT)> f)
      : UserCallbackBase(&run, &drop_node, o), fn(std::move(f)) {}
  static void drop_node(UserCallbackBase* n) noexcept { delete static_cast<UserCallback*>(n); }
  static void run(CallbackNode* n) {
    auto* self = static_cast<UserCallback*>(n);
    struct Cleanup {
      UserCallback* self;
      FutureCore* owner;
      ~Cleanup() {
        delete self;
        release_any(owner);
      }
    } cleanup{self, self->owner};
    self->fn(HandleT::from_core(self->owner));
  }
  std::function<void(HandleT)> fn;
};

/// The awaiter shared by futures and tasks.
struct FutureAwaiterBase {
  FutureCore* core;
  TaskCore* task = nullptr;
  const CallSite* site = nullptr;  ///< the weave call awaiting here, for call graphs
  bool await_ready() const noexcept { return core->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    task = require_task("await a future");
    core->done_waiters.push_back(task);
    begin_wait(task, h, WaitKind::Future, core, site);
  }
  void before_result() const {
    if (task != nullptr) checkpoint(task);
    if (core->exception) rethrow(core);
  }
};

}  // namespace detail

template <class T = void>
class Future {
  using Impl = detail::FutureImpl<T>;

 public:
  using value_type = T;

  Future() noexcept = default;
  /// A pending future bound to `loop`.
  explicit Future(EventLoop& loop) : impl_(new Impl(&loop)) { impl_->refs = 1; }
  Future(const Future& o) noexcept : impl_(o.impl_) {
    if (impl_ != nullptr) ++impl_->refs;
  }
  Future(Future&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)) {}
  Future& operator=(Future o) noexcept {
    std::swap(impl_, o.impl_);
    return *this;
  }
  ~Future() {
    if (impl_ != nullptr) detail::release_any(impl_);
  }

  static Future from_core(detail::FutureCore* core) noexcept {
    Future f;
    f.impl_ = static_cast<Impl*>(core);
    ++f.impl_->refs;
    return f;
  }

  bool done() const noexcept { return impl_->done(); }
  bool cancelled() const noexcept { return impl_->cancelled(); }

  /// Marks the future done with a value. Errors: InvalidStateError if already done.
  template <class U = T, class = std::enable_if_t<!std::is_void_v<U>>>
  void set_result(U&& value) {
    detail::require_pending(impl_);
    ::new (static_cast<void*>(impl_->storage)) T(std::forward<U>(value));
    impl_->flags |= detail::fflag::kHasValue;
    detail::future_complete(impl_, detail::FutureState::Finished);
  }
  template <class U = T, class = std::enable_if_t<std::is_void_v<U>>>
  void set_result() {
    detail::require_pending(impl_);
    detail::future_complete(impl_, detail::FutureState::Finished);
  }
  /// Marks the future done with an exception. Errors: InvalidStateError if already done;
  /// ValueError for a null exception_ptr (asyncio's TypeError for a non-exception).
  void set_exception(std::exception_ptr e) {
    detail::require_pending(impl_);
    if (!e) throw ValueError("set_exception() needs an exception, not a null exception_ptr");
    impl_->exception = std::move(e);
    detail::future_complete(impl_, detail::FutureState::Finished);
  }
  /// Cancels the future and schedules its callbacks; false if it was already done.
  bool cancel(std::string_view msg = {}) { return detail::future_cancel(impl_, msg); }

  /// The value (a move-only value is moved out: it can be taken once). Errors:
  /// InvalidStateError if pending; CancelledError if cancelled; the exception.
  T result() const {
    detail::require_done(impl_);
    if (impl_->exception) detail::rethrow(impl_);
    if constexpr (!std::is_void_v<T>) return detail::hand_out(*impl_->value());
  }
  /// The exception (nullptr if none). Errors: InvalidStateError if pending; CancelledError.
  std::exception_ptr exception() const {
    detail::require_done(impl_);
    if (impl_->cancelled()) detail::rethrow(impl_);
    impl_->flags |= detail::fflag::kRetrieved;
    return impl_->exception;
  }

  /// `fn(future)` is scheduled with call_soon when done (at once if already done).
  CallbackId add_done_callback(std::function<void(Future)> fn) {
    auto* node = new detail::UserCallback<Future>(impl_, std::move(fn));
    detail::add_done_waiter(impl_, node);
    return reinterpret_cast<CallbackId>(node);
  }
  /// Removes a callback that has not been scheduled yet; returns how many were removed.
  std::size_t remove_done_callback(CallbackId id) { return detail::remove_done_waiter(impl_, id); }

  EventLoop& get_loop() const noexcept { return *impl_->loop(); }
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  detail::FutureCore* core() const noexcept { return impl_; }

  struct Awaiter : detail::FutureAwaiterBase {
    T await_resume() const {
      before_result();
      if constexpr (!std::is_void_v<T>) return detail::hand_out(*static_cast<Impl*>(core)->value());
    }
  };
  /// Waits until done. Cancellation: cancelling the awaiting task cancels this future.
  /// Errors: the future's exception; CancelledError when it was cancelled.
  Awaiter operator co_await() const noexcept { return Awaiter{{impl_}}; }

 private:
  Impl* impl_ = nullptr;
};

template <class T>
Future<T> EventLoop::create_future() {
  return Future<T>(*this);
}

}  // namespace weave

#pragma once
/// \file generator.hpp
/// AsyncGenerator<T>: asyncio's async generator, `co_yield` and `co_await` in one body.
///
///   weave::AsyncGenerator<int> numbers(int n) {
///     for (int i = 0; i < n; ++i) { co_await weave::sleep(0s); co_yield i; }
///   }
///   auto gen = numbers(3);
///   while (std::optional<int> v = co_await gen.next()) use(*v);   // `async for`
///
/// The body runs inside the consumer's task, by symmetric transfer (no scheduling, no allocation
/// per item): what it awaits suspends the consumer's task, and cancelling that task raises
/// CancelledError at the body's await, as in asyncio. An exception escaping the body reaches the
/// consumer's co_await, then the generator is finished.
///
/// Clean-up: aclose() raises GeneratorExit at the co_yield where the body waits, so that it can
/// still await (asyncio's aclose); a generator destroyed unfinished destroys its frame, which runs
/// the destructors of everything the body holds. A generator first iterated on a loop is listed
/// by it until it is finished or destroyed: EventLoop::shutdown_asyncgens() (run() and Runner
/// call it) closes the ones still open.
///
/// AsyncGenerator<T, Send> also takes values: `std::optional<Send> s = co_yield v;` is nullopt
/// when the consumer called next(), the value when it called asend(value).

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "weave/coro.hpp"
#include "weave/errors.hpp"

namespace weave {

template <class T, class Send = void>
class AsyncGenerator;

namespace detail {

class LoopImpl;

/// A started generator as its loop lists it (asyncio's loop._asyncgens).
struct AsyncGenLink {
  using CloseFn = Coro<void> (*)(AsyncGenLink*);
  explicit AsyncGenLink(CloseFn c) noexcept : close(c) {}
  CloseFn close;
  LoopImpl* loop = nullptr;
  AsyncGenLink* prev = nullptr;
  AsyncGenLink* next = nullptr;
};
/// asyncio's firstiter hook: lists `g` with the running loop, if there is one.
void asyncgen_first_iter(AsyncGenLink* g) noexcept;
/// Takes `g` off its loop's list.
void asyncgen_forget(AsyncGenLink* g) noexcept;

enum class GenState : std::uint8_t { Created, Suspended, Running, Finished };

template <class Send>
struct SendSlot {
  std::optional<Send> sent;
  std::optional<Send> take_sent() noexcept(std::is_nothrow_move_constructible_v<Send>) {
    return std::exchange(sent, std::nullopt);
  }
};
template <>
struct SendSlot<void> {
  void take_sent() noexcept {}
};

template <class T, class Send>
struct GenPromise : AsyncGenLink, SendSlot<Send> {
  static_assert(!std::is_reference_v<T>, "AsyncGenerator<T&> is not supported; yield a pointer");
  using Handle = std::coroutine_handle<GenPromise>;

  GenPromise() noexcept : AsyncGenLink(&close_link) {}
  ~GenPromise() {
    if (loop != nullptr) asyncgen_forget(this);
  }
  GenPromise(const GenPromise&) = delete;
  GenPromise& operator=(const GenPromise&) = delete;

  AsyncGenerator<T, Send> get_return_object() noexcept;
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct ToConsumer {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(Handle h) const noexcept { return h.promise().consumer; }
    void await_resume() const noexcept {}
  };
  ToConsumer final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
  void return_void() noexcept {}

  /// Where the body waits at a co_yield: athrow()/aclose() raise here, asend() delivers here.
  struct YieldAwaiter : ToConsumer {
    GenPromise* p;
    auto await_resume() {
      if (p->thrown) std::rethrow_exception(std::exchange(p->thrown, nullptr));
      return p->take_sent();
    }
  };
  // The yielded object lives until the body resumes (the co_yield's full expression): the
  // consumer moves an rvalue out of it and copies an lvalue, with no slot in between.
  YieldAwaiter yield_value(T&& v) noexcept {
    value = std::addressof(v);
    movable = true;
    return YieldAwaiter{{}, this};
  }
  YieldAwaiter yield_value(const T& v) noexcept requires std::is_copy_constructible_v<T> {
    value = std::addressof(v);
    movable = false;
    return YieldAwaiter{{}, this};
  }
  T take_value() {
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!movable) return *value;
    }
    return std::move(*const_cast<T*>(value));
  }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }

  static Coro<void> close_link(AsyncGenLink* link);

  std::coroutine_handle<> consumer;
  const T* value = nullptr;
  std::exception_ptr exception;  ///< escaped the body: for the consumer
  std::exception_ptr thrown;     ///< athrow/aclose: to raise at the co_yield
  GenState state = GenState::Created;
  bool movable = false;
};

template <class Send>
struct SendBox {
  std::optional<Send> value;
};
template <>
struct SendBox<void> {};

/// One awaited step of a generator: next(), asend(v) or athrow(e).
template <class T, class Send>
class GenStep {
  using Promise = GenPromise<T, Send>;
  using Handle = typename Promise::Handle;

 public:
  GenStep(Handle h, const char* what, std::exception_ptr thrown = nullptr) noexcept
      : h_(h), what_(what), thrown_(std::move(thrown)) {}
  template <class S = Send>
  GenStep(Handle h, const char* what, S&& sent) : h_(h), what_(what) {
    send_.value.emplace(std::forward<S>(sent));
  }

  bool await_ready() {
    if (!h_) return true;
    Promise& p = h_.promise();
    switch (p.state) {
      case GenState::Running:
        throw RuntimeError(std::string(what_) + "(): asynchronous generator is already running");
      case GenState::Finished:
        return true;
      case GenState::Created:
        if (thrown_) {  // thrown into a body that never ran: it ends at once, with the exception
          p.state = GenState::Finished;
          return true;
        }
        if constexpr (!std::is_void_v<Send>) {
          if (send_.value) {
            throw ValueError("can't send non-None value to a just-started async generator");
          }
        }
        asyncgen_first_iter(&p);
        return false;
      case GenState::Suspended:
        return false;
    }
    return true;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.state = GenState::Running;
    p.thrown = std::move(thrown_);
    if constexpr (!std::is_void_v<Send>) p.sent = std::move(send_.value);
    resumed_ = true;
    return h_;
  }
  std::optional<T> await_resume() {
    if (!resumed_) {
      if (thrown_) std::rethrow_exception(thrown_);
      return std::nullopt;
    }
    Promise& p = h_.promise();
    if (h_.done()) {
      p.state = GenState::Finished;
      if (p.loop != nullptr) asyncgen_forget(&p);
      if (p.exception) std::rethrow_exception(std::exchange(p.exception, nullptr));
      return std::nullopt;
    }
    p.state = GenState::Suspended;
    return p.take_value();
  }

 private:
  Handle h_;
  const char* what_;
  std::exception_ptr thrown_;
  [[no_unique_address]] SendBox<Send> send_;
  bool resumed_ = false;
};

/// next(): the hot path of every `async for`, kept to a state check and two jumps.
template <class T, class Send>
class GenNext {
  using Promise = GenPromise<T, Send>;
  using Handle = typename Promise::Handle;

 public:
  explicit GenNext(Handle h) noexcept : h_(h) {}
  bool await_ready() {
    if (h_ && h_.promise().state == GenState::Suspended) return false;
    return not_suspended();
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) noexcept {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.state = GenState::Running;
    return h_;
  }
  std::optional<T> await_resume() {
    if (!h_) return std::nullopt;
    Promise& p = h_.promise();
    if (p.state != GenState::Running) return std::nullopt;  // it had ended before this step
    if (h_.done()) return ended(p);
    p.state = GenState::Suspended;
    return p.take_value();
  }

 private:
  bool not_suspended() {
    if (!h_) return true;
    Promise& p = h_.promise();
    if (p.state == GenState::Running) {
      throw RuntimeError("anext(): asynchronous generator is already running");
    }
    if (p.state == GenState::Finished) return true;
    asyncgen_first_iter(&p);
    return false;
  }
  static std::optional<T> ended(Promise& p) {
    p.state = GenState::Finished;
    if (p.loop != nullptr) asyncgen_forget(&p);
    if (p.exception) std::rethrow_exception(std::exchange(p.exception, nullptr));
    return std::nullopt;
  }
  Handle h_;
};

/// aclose(): GeneratorExit at the co_yield; the body must end (not yield again).
template <class T, class Send>
class GenClose {
  using Promise = GenPromise<T, Send>;
  using Handle = typename Promise::Handle;

 public:
  explicit GenClose(Handle h) noexcept : h_(h) {}
  bool await_ready() {
    if (!h_) return true;
    Promise& p = h_.promise();
    if (p.state == GenState::Running) {
      throw RuntimeError("aclose(): asynchronous generator is already running");
    }
    if (p.state != GenState::Suspended) {
      finish(p);
      return true;
    }
    return false;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.state = GenState::Running;
    p.thrown = std::make_exception_ptr(GeneratorExit());
    resumed_ = true;
    return h_;
  }
  void await_resume() {
    if (!resumed_) return;
    Promise& p = h_.promise();
    finish(p);
    if (!h_.done()) throw RuntimeError("async generator ignored GeneratorExit");
    if (std::exception_ptr e = std::exchange(p.exception, nullptr)) {
      try {
        std::rethrow_exception(e);
      } catch (const GeneratorExit&) {
        // The body let GeneratorExit through: closed as asked.
      }
    }
  }

 private:
  static void finish(Promise& p) noexcept {
    p.state = GenState::Finished;
    if (p.loop != nullptr) asyncgen_forget(&p);
  }
  Handle h_;
  bool resumed_ = false;
};

}  // namespace detail

/// asyncio's async generator; see the file comment. Move-only; destroying it destroys the frame.
template <class T, class Send>
class [[nodiscard]] AsyncGenerator {
 public:
  using promise_type = detail::GenPromise<T, Send>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  AsyncGenerator() noexcept = default;
  explicit AsyncGenerator(Handle h) noexcept : h_(h) {}
  AsyncGenerator(AsyncGenerator&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  AsyncGenerator& operator=(AsyncGenerator&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  AsyncGenerator(const AsyncGenerator&) = delete;
  AsyncGenerator& operator=(const AsyncGenerator&) = delete;
  ~AsyncGenerator() {
    if (h_) h_.destroy();
  }

  /// asyncio's anext(): runs the body to its next co_yield; nullopt once it has ended.
  /// Errors: the body's exception (once; the generator is then finished); RuntimeError while
  /// another step of this generator is in progress. Cancellation: raised at the body's await.
  detail::GenNext<T, Send> next() noexcept { return detail::GenNext<T, Send>(h_); }
  /// asyncio's asend(value): resumes the body with `value` as the co_yield's result.
  /// Errors: as next(); ValueError on a generator that has not started (asyncio's TypeError).
  template <class S = Send>
  requires(!std::is_void_v<S>) detail::GenStep<T, Send> asend(S value) {
    return {h_, "asend", std::move(value)};
  }
  /// asyncio's athrow(e): raises `e` at the co_yield; returns what the body yields next. On a
  /// generator that has not started, `e` ends it and is raised here. Errors: `e` or whatever
  /// the body raises instead.
  detail::GenStep<T, Send> athrow(std::exception_ptr e) noexcept { return {h_, "athrow", e}; }
  template <class E>
  requires(!std::is_same_v<std::decay_t<E>, std::exception_ptr>) detail::GenStep<T, Send> athrow(
      E e) {
    return athrow(std::make_exception_ptr(std::move(e)));
  }
  /// asyncio's aclose(): raises GeneratorExit at the co_yield and lets the body end; nothing to
  /// do on a generator that never started or has ended. Errors: RuntimeError when the body
  /// yields instead ("async generator ignored GeneratorExit") or while a step is in progress;
  /// another exception the body raises.
  detail::GenClose<T, Send> aclose() noexcept { return detail::GenClose<T, Send>(h_); }

  /// asyncio's ag_running: a step is in progress.
  bool is_running() const noexcept { return h_ && h_.promise().state == detail::GenState::Running; }
  /// The body has ended (or was closed); next() gives nullopt.
  bool finished() const noexcept { return !h_ || h_.promise().state == detail::GenState::Finished; }

 private:
  Handle h_;
};

namespace detail {
template <class T, class Send>
AsyncGenerator<T, Send> GenPromise<T, Send>::get_return_object() noexcept {
  return AsyncGenerator<T, Send>(Handle::from_promise(*this));
}

template <class T, class Send>
Coro<void> GenPromise<T, Send>::close_link(AsyncGenLink* link) {
  co_await GenClose<T, Send>(Handle::from_promise(*static_cast<GenPromise*>(link)));
}
}  // namespace detail

}  // namespace weave

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
///
/// Call graphs: a generator's frame sits between its consumer's and what its body awaits, as a
/// nested Coro's does. A stack taken by the body's own code (not inside something it awaits)
/// starts at the consumer's frame: naming the body's frame on every step would add about a
/// sixth to the instructions of a pipeline's item (bench/pipeline_bench).

#include <coroutine>
#include <cstddef>
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

template <class T, class Send>
class GenNext;

template <class P>
struct IsGenPromise : std::false_type {};
template <class T, class Send>
struct GenPromise;
template <class T, class Send>
struct IsGenPromise<GenPromise<T, Send>> : std::true_type {};

/// Where a consumer generator keeps its `leaf_here`; nullptr for any other consumer.
template <class P>
bool* leaf_flag_of(std::coroutine_handle<P> consumer) noexcept {
  if constexpr (IsGenPromise<P>::value) {
    return &consumer.promise().leaf_here;
  } else {
    return nullptr;
  }
}

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

// The per-item path is what a pipeline pays per stage, so it is kept to the work a hand-written
// state machine would do: next() checks one byte, stores the consumer and jumps into the body;
// co_yield stores the value's address and jumps back; the consumer copies or moves the value out
// of the body's own object. Everything else (first iteration, the end, errors, athrow) is on
// out-of-line paths, so that the hot path holds no exception object and saves few registers.
template <class T, class Send>
struct GenPromise : AsyncGenLink {
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
    std::coroutine_handle<> await_suspend(Handle h) const noexcept {
      GenPromise& p = h.promise();
      if (p.leaf_here) [[unlikely]]
        p.give_leaf_back();
      return p.consumer;
    }
    void await_resume() const noexcept {}
  };
  ToConsumer final_suspend() noexcept {
    value = nullptr;
    return {};
  }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
  void return_void() noexcept {}

  // TaskCore::leaf names the frame running now, for call graphs. The body's own code leaves it
  // on the consumer (a stack taken there starts one frame up, at the consumer); what the body
  // awaits moves it into this frame (a nested Coro's return, a wait's resumption), and then
  // the co_yield or the end hands it back, so that it never names a frame gone with its
  // generator. A nested generator's next() moves nothing by itself: the pipeline's hot path.
  template <class A>
  A&& await_transform(A&& a) noexcept {
    leaf_here = true;
    return std::forward<A>(a);
  }
  template <class U, class S>
  GenNext<U, S>&& await_transform(GenNext<U, S>&& a) noexcept {
    return std::move(a);
  }
  /// The leaf may name this frame: it becomes the consumer's (which may be a generator's frame:
  /// that one hands it on in turn).
  [[gnu::noinline]] void give_leaf_back() noexcept {
    leaf_here = false;
    if (TaskCore* t = current_task_core()) t->leaf = consumer;
    if (consumer_leaf_here != nullptr) *consumer_leaf_here = true;
  }

  /// Where the body waits at a co_yield: athrow()/aclose() raise here, asend() delivers here.
  struct YieldAwaiter : ToConsumer {
    GenPromise* p;
    auto await_resume() {
      if (p->thrown) [[unlikely]]
        p->raise_thrown();
      return p->send.take_sent();
    }
  };
  // The yielded object lives until the body resumes (the co_yield's full expression): the
  // consumer moves an rvalue out of it and copies an lvalue, with no slot in between.
  YieldAwaiter yield_value(T&& v) noexcept {
    value = std::addressof(v);
    if constexpr (!kPlainCopy) movable = true;
    return YieldAwaiter{{}, this};
  }
  YieldAwaiter yield_value(const T& v) noexcept requires std::is_copy_constructible_v<T> {
    value = std::addressof(v);
    if constexpr (!kPlainCopy) movable = false;
    return YieldAwaiter{{}, this};
  }
  T take_value() {
    if constexpr (!kPlainCopy && std::is_copy_constructible_v<T>) {
      if (!movable) return *value;
    }
    if constexpr (kPlainCopy) {
      return *value;
    } else {
      return std::move(*const_cast<T*>(value));
    }
  }

  /// The step that resumed the body came back without a value: the body has ended (or never
  /// ran, when the generator had already finished). Finishes it and raises what escaped. (No
  /// std::optional returned from here: merging two of them costs the hot path a stack slot.)
  [[gnu::noinline]] void end_of_step() {
    finish();
    if (exception) std::rethrow_exception(std::exchange(exception, nullptr));
  }
  void finish() noexcept {
    state = GenState::Finished;
    value = nullptr;
    if (loop != nullptr) asyncgen_forget(this);
  }
  [[noreturn, gnu::noinline]] void raise_thrown() {
    std::rethrow_exception(std::exchange(thrown, nullptr));
  }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }

  static Coro<void> close_link(AsyncGenLink* link);

  // The word where a Coro's promise keeps its awaiter (FutureCore::link_), so that a call graph
  // goes from a generator's frame to its consumer's as from a nested Coro's to its caller's:
  // the first member, right after AsyncGenLink (checked in get_return_object).
  std::coroutine_handle<> consumer;
  /// The object of the co_yield where the body waits; nullptr whenever it does not wait at one
  /// (not started, running, ended), so that one test tells a consumer "a value" from "the end".
  const T* value = nullptr;
  std::exception_ptr exception;  ///< escaped the body: for the consumer
  std::exception_ptr thrown;     ///< athrow/aclose: to raise at the co_yield
  [[no_unique_address]] SendSlot<Send> send;
  bool* consumer_leaf_here = nullptr;  ///< the consumer's `leaf_here`, when it is a generator
  GenState state = GenState::Created;
  bool leaf_here = false;  ///< TaskCore::leaf may name this frame (see await_transform)
  bool movable = false;    ///< `value` is an rvalue (unused when copying is moving)

 private:
  static constexpr bool kPlainCopy = std::is_trivially_copy_constructible_v<T>;
};

template <class Send>
struct SendBox {
  std::optional<Send> value;
};
template <>
struct SendBox<void> {};

/// The slow half of starting a step: a generator that is not waiting at a co_yield. Returns
/// true when there is nothing to run (ended, or empty).
template <class Promise>
[[gnu::noinline]] bool step_not_suspended(Promise* p, const char* what) {
  if (p == nullptr) return true;
  switch (p->state) {
    case GenState::Running:
      throw RuntimeError(std::string(what) + "(): asynchronous generator is already running");
    case GenState::Finished:
      return true;
    case GenState::Created:
      asyncgen_first_iter(p);
      return false;
    case GenState::Suspended:
      return false;
  }
  return true;
}

/// next(): the hot path of every `async for`; see GenPromise.
template <class T, class Send>
class GenNext {
  using Promise = GenPromise<T, Send>;
  using Handle = typename Promise::Handle;

 public:
  explicit GenNext(Handle h) noexcept : h_(h) {}
  bool await_ready() {
    if (h_ && h_.promise().state == GenState::Suspended) [[likely]]
      return false;
    return step_not_suspended(h_ ? &h_.promise() : nullptr, "anext");
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> consumer) noexcept {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.consumer_leaf_here = leaf_flag_of(consumer);
    p.state = GenState::Running;
    return h_;
  }
  std::optional<T> await_resume() {
    if (h_) [[likely]] {
      Promise& p = h_.promise();
      if (p.value != nullptr) [[likely]] {
        p.state = GenState::Suspended;
        return p.take_value();
      }
      p.end_of_step();
    }
    return std::nullopt;
  }

 private:
  Handle h_;
};

/// asend(v) or athrow(e): one step that also delivers something at the co_yield.
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
    if (h_ && h_.promise().state == GenState::Created) {
      Promise& p = h_.promise();
      if (thrown_) {  // thrown into a body that never ran: it ends at once, with the exception
        p.finish();
        return true;
      }
      if constexpr (!std::is_void_v<Send>) {
        if (send_.value) {
          throw ValueError("can't send non-None value to a just-started async generator");
        }
      }
    }
    return step_not_suspended(h_ ? &h_.promise() : nullptr, what_);
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> consumer) {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.consumer_leaf_here = leaf_flag_of(consumer);
    p.state = GenState::Running;
    p.thrown = std::move(thrown_);
    if constexpr (!std::is_void_v<Send>) p.send.sent = std::move(send_.value);
    resumed_ = true;
    return h_;
  }
  std::optional<T> await_resume() {
    if (!resumed_) {
      if (thrown_) std::rethrow_exception(thrown_);
      return std::nullopt;
    }
    Promise& p = h_.promise();
    if (p.value == nullptr) {
      p.end_of_step();
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
      p.finish();
      return true;
    }
    return false;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> consumer) {
    Promise& p = h_.promise();
    p.consumer = consumer;
    p.consumer_leaf_here = leaf_flag_of(consumer);
    p.state = GenState::Running;
    p.thrown = std::make_exception_ptr(GeneratorExit());
    resumed_ = true;
    return h_;
  }
  void await_resume() {
    if (!resumed_) return;
    Promise& p = h_.promise();
    const bool yielded = p.value != nullptr;
    p.finish();
    if (yielded) throw RuntimeError("async generator ignored GeneratorExit");
    if (std::exception_ptr e = std::exchange(p.exception, nullptr)) {
      try {
        std::rethrow_exception(e);
      } catch (const GeneratorExit&) {
        // The body let GeneratorExit through: closed as asked.
      }
    }
  }

 private:
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
  // The call-graph walk reads `consumer` as a Coro promise's link_ (both promises sit at the
  // same place in their frames: after the two function pointers, 8-aligned).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(GenPromise, consumer) == offsetof(Promise<void>, link_));
  static_assert(alignof(GenPromise) == alignof(Promise<void>));
#pragma GCC diagnostic pop
  return AsyncGenerator<T, Send>(Handle::from_promise(*this));
}

template <class T, class Send>
Coro<void> GenPromise<T, Send>::close_link(AsyncGenLink* link) {
  co_await GenClose<T, Send>(Handle::from_promise(*static_cast<GenPromise*>(link)));
}
}  // namespace detail

}  // namespace weave

#pragma once
/// \file contextvars.hpp
/// Context variables (Python's contextvars): ContextVar<T>, Token, Context, copy_context().
///
/// A context maps variables to values. It is a persistent map (a hash array mapped trie, as
/// CPython's): set() makes a new map that shares all but one path with the old one, so copying a
/// context is one pointer copy. Tasks copy the current context when created (or take
/// TaskOptions::context) and run every step in it; call_soon/call_later/call_at/
/// call_soon_threadsafe capture the caller's context (or take one), and to_thread and
/// run_in_executor run the function in it. An empty context is a null pointer: a task created
/// with no variable set costs nothing more than before contexts existed.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"

namespace weave {

namespace detail {

/// A boxed value of one variable, shared between every map that holds it.
struct CtxValue {
  std::atomic<std::uint32_t> refs{1};
  virtual ~CtxValue() = default;
};
template <class T>
struct CtxValueOf final : CtxValue {
  explicit CtxValueOf(T v) : value(std::move(v)) {}
  T value;
};
void ctx_value_release(CtxValue* v) noexcept;

/// A context word (see future_core.hpp): a map, or a tagged shared Context.
using CtxWord = std::uintptr_t;
/// The current context's value of the variable `key`, or nullptr.
const CtxValue* ctx_get(std::uint64_t key) noexcept;
/// A new variable key, never reused.
std::uint64_t ctx_new_key() noexcept;

/// What a Token records (shared by its copies).
struct TokenState {
  std::uint64_t key = 0;
  const void* context = nullptr;  ///< the identity of the context set() ran in
  CtxValue* old = nullptr;        ///< the previous value, retained; nullptr: Token.MISSING
  bool used = false;
  ~TokenState() {
    if (old != nullptr) ctx_value_release(old);
  }
};
/// Sets `key` to `value` (taken over; nullptr removes it) in the current context; returns the
/// token state with the old value.
std::shared_ptr<TokenState> ctx_set(std::uint64_t key, CtxValue* value);
/// ContextVar.reset. Errors: RuntimeError for a token used once already; ValueError for a token
/// of another variable or another context.
void ctx_reset(std::uint64_t key, TokenState& token);

struct ContextImpl;

/// Runs with `*slot` as the current context until the scope ends (Context::run, a callback's
/// context, a thread's call from to_thread).
class ContextScope {
 public:
  explicit ContextScope(CtxWord* slot) noexcept;
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  CtxWord* saved_;
};

/// An owned copy of a context word (retained on copy, released on destruction).
class CtxHold {
 public:
  explicit CtxHold(CtxWord w) noexcept : word(w) {}
  CtxHold(CtxHold&& o) noexcept : word(std::exchange(o.word, 0)) {}
  CtxHold(const CtxHold&) = delete;
  CtxHold& operator=(const CtxHold&) = delete;
  CtxHold& operator=(CtxHold&&) = delete;
  ~CtxHold();
  CtxWord word;
};

/// The current context, copied (a retained map; 0 when empty). Defined in contextvars.cpp.
CtxWord ctx_capture() noexcept;
void ctx_release(CtxWord w) noexcept;
/// Replaces the innermost scope's slot (nullptr: none); returns the previous one.
CtxWord* ctx_swap_scope(CtxWord* slot) noexcept;
}  // namespace detail

template <class T>
class ContextVar;

/// What ContextVar::set returns, for reset(). Copies share one state (a token is used once).
class Token {
 public:
  /// Whether the variable had no value before the set() (Python's Token.MISSING).
  bool old_value_missing() const noexcept { return state_->old == nullptr; }

 private:
  template <class T>
  friend class ContextVar;
  explicit Token(std::shared_ptr<detail::TokenState> s) noexcept : state_(std::move(s)) {}
  std::shared_ptr<detail::TokenState> state_;
};

/// Python's contextvars.ContextVar. Declare variables at namespace scope or keep them alive as
/// long as any context may hold their value. `T` is copied out by get().
template <class T>
class ContextVar {
  static_assert(std::is_copy_constructible_v<T>, "ContextVar<T> needs a copyable T");

 public:
  explicit ContextVar(std::string name) : name_(std::move(name)), key_(detail::ctx_new_key()) {}
  ContextVar(std::string name, T default_value)
      : name_(std::move(name)), key_(detail::ctx_new_key()), default_(std::move(default_value)) {}
  ContextVar(const ContextVar&) = delete;
  ContextVar& operator=(const ContextVar&) = delete;

  const std::string& name() const noexcept { return name_; }

  /// The value in the current context, else the variable's default. Errors: LookupError when
  /// there is neither.
  T get() const {
    if (const detail::CtxValue* v = detail::ctx_get(key_)) {
      return static_cast<const detail::CtxValueOf<T>*>(v)->value;
    }
    if (default_) return *default_;
    throw LookupError("<ContextVar name='" + name_ + "'>");
  }
  /// The value in the current context, else `fallback` (before the variable's default).
  T get(T fallback) const {
    if (const detail::CtxValue* v = detail::ctx_get(key_)) {
      return static_cast<const detail::CtxValueOf<T>*>(v)->value;
    }
    return fallback;
  }
  /// Sets the value in the current context; the token restores the previous state.
  Token set(T value) {
    return Token(detail::ctx_set(key_, new detail::CtxValueOf<T>(std::move(value))));
  }
  /// Puts the variable back as it was before the set() that made `token`. Errors: RuntimeError
  /// if the token was used already; ValueError if another variable or another context made it.
  void reset(const Token& token) { detail::ctx_reset(key_, *token.state_); }

 private:
  std::string name_;
  std::uint64_t key_;
  std::optional<T> default_;
};

/// Python's contextvars.Context: a mapping of variables to values that code runs in. Copies of
/// a Context object refer to the same context (as Python's references do); copy_context() makes
/// a new one.
class Context {
 public:
  /// A new empty context.
  Context();
  Context(const Context& o) noexcept;
  Context& operator=(const Context& o) noexcept;
  ~Context();

  /// Runs `fn()` with this context current; what it sets stays in this context. Errors:
  /// RuntimeError when the context is already entered (here or in another thread).
  template <class F>
  decltype(auto) run(F&& fn) {
    struct Exit {
      Context* self;
      ~Exit() { self->exit(); }
    };
    detail::CtxWord word = enter();  // the tagged word: tokens see this Context's identity
    Exit exit_guard{this};
    detail::ContextScope scope(&word);
    return std::forward<F>(fn)();
  }
  /// The tagged word for a task or callback that runs in this context (retained).
  detail::CtxWord share() const noexcept;
  explicit Context(detail::ContextImpl* impl) noexcept : impl_(impl) {}

 private:
  detail::CtxWord enter();
  void exit() noexcept;
  detail::ContextImpl* impl_;
};

/// A copy of the current context (O(1)).
Context copy_context();

}  // namespace weave

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

#include "weave/detail/future_core.hpp"
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

/// A node of the persistent map (contextvars.cpp builds them): popcount(bitmap) entries, each a
/// leaf or a child node. Declared here so that ContextVar::get reads it inline.
struct CtxMap {
  struct Entry {
    std::uint64_t key;  ///< 0: `ptr` is a child CtxMap
    void* ptr;          ///< a CtxValue (a leaf) or a CtxMap (a child)
  };
  std::atomic<std::uint32_t> refs{1};
  std::uint32_t bitmap = 0;
  Entry entries[1];  // popcount(bitmap) of them
};

/// A shared Context object: its own slot holds the map.
struct ContextImpl {
  std::atomic<std::uint32_t> refs{1};
  std::atomic<bool> entered{false};
  CtxWord map = 0;  ///< a plain map word, never tagged
};

/// The bits set in `x`. The baseline x86-64 has no popcnt instruction, and std::popcount then
/// calls into libgcc: this stays inline either way.
inline unsigned popcount32(std::uint32_t x) noexcept {
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
  return static_cast<unsigned>(__builtin_popcount(x));
#else
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  return (((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24;
#endif
}

inline constexpr unsigned kCtxBits = 5;  ///< key bits consumed per level of the map

/// The value of `key` in the map `m`, or nullptr.
inline const CtxValue* ctx_lookup(const CtxMap* m, std::uint64_t key) noexcept {
  for (unsigned shift = 0; m != nullptr; shift += kCtxBits) {
    const std::uint32_t bit = 1u << ((key >> shift) & 31u);
    if ((m->bitmap & bit) == 0) return nullptr;
    const CtxMap::Entry& e = m->entries[popcount32(m->bitmap & (bit - 1))];
    if (e.key == key) return static_cast<const CtxValue*>(e.ptr);
    if (e.key != 0) return nullptr;
    m = static_cast<const CtxMap*>(e.ptr);
  }
  return nullptr;
}

/// Which slot holds the current context: the innermost ContextScope's, else the running task's,
/// else the thread's base one (contextvars.cpp defines them).
extern constinit thread_local CtxWord* t_ctx_scope WEAVE_HOT_TLS;
extern constinit thread_local CtxWord t_ctx_base WEAVE_HOT_TLS;

/// The last lookup of this thread (CPython's ContextVar keeps one such cache per variable). A
/// map never changes, so a hit needs the same map and key, and no map freed since: a freed map's
/// address may come back as another map's.
struct CtxGetCache {
  CtxWord map = 0;
  std::uint64_t key = 0;
  const CtxValue* value = nullptr;
  std::uint64_t frees = 0;
};
extern constinit thread_local CtxGetCache t_ctx_cache WEAVE_HOT_TLS;
/// How many maps were freed, in any thread.
extern std::atomic<std::uint64_t> g_ctx_map_frees;
/// ctx_lookup(map, key), remembered in t_ctx_cache.
const CtxValue* ctx_get_slow(CtxWord map, std::uint64_t key) noexcept;

/// The current context's value of the variable `key`, or nullptr: a few loads, no call when the
/// same variable is read again in the same context.
inline const CtxValue* ctx_get(std::uint64_t key) noexcept {
  const CtxWord* slot = t_ctx_scope;
  if (slot == nullptr) slot = t_current != nullptr ? &t_current->context : &t_ctx_base;
  CtxWord w = *slot;
  if ((w & 1) != 0) w = reinterpret_cast<const ContextImpl*>(w & ~CtxWord{1})->map;
  if (w == 0) return nullptr;
  const CtxGetCache& c = t_ctx_cache;
  if (c.map == w && c.key == key && c.frees == g_ctx_map_frees.load(std::memory_order_relaxed)) {
    return c.value;
  }
  return ctx_get_slow(w, key);
}
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

/// Runs with `*slot` as the current context until the scope ends (Context::run, a callback's
/// context, a thread's call from to_thread).
class ContextScope {
 public:
  explicit ContextScope(CtxWord* slot) noexcept : saved_(t_ctx_scope) { t_ctx_scope = slot; }
  ~ContextScope() { t_ctx_scope = saved_; }
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

void ctx_retain_map(CtxWord map) noexcept;
void ctx_release_slow(CtxWord w) noexcept;
/// The current context, copied (a retained map; 0 when empty): inline, so that a callback made
/// in the empty context (the common case) pays a few loads and no call.
inline CtxWord ctx_capture() noexcept {
  const CtxWord* slot = t_ctx_scope;
  if (slot == nullptr) slot = t_current != nullptr ? &t_current->context : &t_ctx_base;
  CtxWord w = *slot;
  if ((w & 1) != 0) w = reinterpret_cast<const ContextImpl*>(w & ~CtxWord{1})->map;
  if (w != 0) ctx_retain_map(w);
  return w;
}
inline void ctx_release(CtxWord w) noexcept {
  if (w != 0) ctx_release_slow(w);
}
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
    return missing();
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
  /// get() without a value: kept out of line so that the lookup stays small.
  [[gnu::noinline]] T missing() const {
    if (default_) return *default_;
    throw LookupError("<ContextVar name='" + name_ + "'>");
  }

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

// Context variables: the persistent map (a hash array mapped trie keyed by the variable's key,
// five bits a level, path copying on set) and the current-context rules.
//
// The current context is a slot holding a context word: a CtxMap* (0 for the empty map) or a
// ContextImpl* with its low bit set (a shared Context object, whose own slot then holds the map).
// Which slot is current: the innermost ContextScope (Context::run, a callback, a thread's call),
// else the running task's own word, else the thread's base context. A task step therefore
// switches context by switching the current task: no work of its own.

#include "weave/contextvars.hpp"

#include <new>

#include "weave/detail/future_core.hpp"

namespace weave::detail {

constinit thread_local CtxWord* t_ctx_scope WEAVE_HOT_TLS = nullptr;
constinit thread_local CtxWord t_ctx_base WEAVE_HOT_TLS = 0;
constinit thread_local CtxGetCache t_ctx_cache WEAVE_HOT_TLS{};
std::atomic<std::uint64_t> g_ctx_map_frees{0};

namespace {

std::size_t node_size(const CtxMap* m) noexcept {
  return popcount32(m->bitmap);
}

constexpr unsigned kBits = kCtxBits;

/// Releases the thread's base context at thread exit; touched by the first write to it, so
/// that threads that never set a variable register nothing.
struct BaseContextRelease {
  ~BaseContextRelease() { ctx_release(std::exchange(t_ctx_base, 0)); }
};
thread_local BaseContextRelease t_base_release;

bool is_shared(CtxWord w) noexcept {
  return (w & 1) != 0;
}
ContextImpl* as_impl(CtxWord w) noexcept {
  return reinterpret_cast<ContextImpl*>(w & ~CtxWord{1});
}
CtxMap* as_map(CtxWord w) noexcept {
  return reinterpret_cast<CtxMap*>(w);
}

CtxMap* new_map(std::size_t n) {
  const std::size_t bytes = sizeof(CtxMap) + (n == 0 ? 0 : n - 1) * sizeof(CtxMap::Entry);
  return ::new (::operator new(bytes)) CtxMap;
}

void map_retain(CtxMap* m) noexcept {
  if (m != nullptr) m->refs.fetch_add(1, std::memory_order_relaxed);
}

void map_release(CtxMap* m) noexcept {
  if (m == nullptr || m->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (std::size_t i = 0, n = node_size(m); i < n; ++i) {
    CtxMap::Entry& e = m->entries[i];
    if (e.key == 0) {
      map_release(static_cast<CtxMap*>(e.ptr));
    } else {
      ctx_value_release(static_cast<CtxValue*>(e.ptr));
    }
  }
  // Counted before the memory can be reused: a cached lookup of this address is stale from now.
  g_ctx_map_frees.fetch_add(1, std::memory_order_relaxed);
  m->~CtxMap();
  ::operator delete(m);
}

void entry_retain(const CtxMap::Entry& e) noexcept {
  if (e.key == 0) {
    map_retain(static_cast<CtxMap*>(e.ptr));
  } else {
    static_cast<CtxValue*>(e.ptr)->refs.fetch_add(1, std::memory_order_relaxed);
  }
}

unsigned index_bits(std::uint64_t key, unsigned shift) noexcept {
  return static_cast<unsigned>((key >> shift) & 31u);
}

/// A copy of `m` with room for `extra` more entries before position `at` (retains the copies).
CtxMap* copy_with_gap(const CtxMap* m, std::size_t at, std::size_t extra) {
  const std::size_t n = m == nullptr ? 0 : node_size(m);
  CtxMap* c = new_map(n + extra);
  c->bitmap = m == nullptr ? 0 : m->bitmap;
  for (std::size_t i = 0, j = 0; i < n; ++i, ++j) {
    if (i == at) j += extra;
    c->entries[j] = m->entries[i];
    entry_retain(c->entries[j]);
  }
  return c;
}

/// A node holding two leaves whose keys agree below `shift`.
CtxMap* pair_node(CtxMap::Entry a, CtxMap::Entry b, unsigned shift) {
  const unsigned ia = index_bits(a.key, shift);
  const unsigned ib = index_bits(b.key, shift);
  if (ia == ib) {
    CtxMap* n = new_map(1);
    n->bitmap = 1u << ia;
    n->entries[0] = {0, pair_node(a, b, shift + kBits)};
    return n;
  }
  CtxMap* n = new_map(2);
  n->bitmap = (1u << ia) | (1u << ib);
  n->entries[0] = ia < ib ? a : b;
  n->entries[1] = ia < ib ? b : a;
  return n;
}

/// `m` with `key` mapped to `value` (taken over). `m` is unchanged.
CtxMap* assoc(const CtxMap* m, std::uint64_t key, CtxValue* value, unsigned shift) {
  const std::uint32_t bit = 1u << index_bits(key, shift);
  const std::uint32_t bitmap = m == nullptr ? 0 : m->bitmap;
  const std::size_t pos = static_cast<std::size_t>(popcount32(bitmap & (bit - 1)));
  if ((bitmap & bit) == 0) {
    CtxMap* c = copy_with_gap(m, pos, 1);
    c->bitmap |= bit;
    c->entries[pos] = {key, value};
    return c;
  }
  CtxMap* c = copy_with_gap(m, node_size(m), 0);
  CtxMap::Entry& e = c->entries[pos];
  if (e.key == key) {
    ctx_value_release(static_cast<CtxValue*>(e.ptr));
    e.ptr = value;
  } else if (e.key != 0) {
    e = {0, pair_node(e, {key, value}, shift + kBits)};  // the copy's reference moves in
  } else {
    CtxMap* child = static_cast<CtxMap*>(e.ptr);
    e.ptr = assoc(child, key, value, shift + kBits);
    map_release(child);
  }
  return c;
}

/// `m` without `key` (a new reference; nullptr when it ends up empty).
CtxMap* dissoc(CtxMap* m, std::uint64_t key, unsigned shift) {
  if (m == nullptr) return nullptr;
  const std::uint32_t bit = 1u << index_bits(key, shift);
  if ((m->bitmap & bit) == 0) {
    map_retain(m);
    return m;
  }
  const std::size_t pos = static_cast<std::size_t>(popcount32(m->bitmap & (bit - 1)));
  const CtxMap::Entry& e = m->entries[pos];
  CtxMap* child = nullptr;
  if (e.key == 0) {
    child = dissoc(static_cast<CtxMap*>(e.ptr), key, shift + kBits);
    if (child == e.ptr) {  // not there
      map_release(child);
      map_retain(m);
      return m;
    }
  } else if (e.key != key) {
    map_retain(m);
    return m;
  }
  if (child != nullptr) {
    CtxMap* c = copy_with_gap(m, node_size(m), 0);
    map_release(static_cast<CtxMap*>(c->entries[pos].ptr));
    c->entries[pos].ptr = child;
    return c;
  }
  if (node_size(m) == 1) return nullptr;
  const std::size_t n = node_size(m);
  CtxMap* c = new_map(n - 1);
  c->bitmap = m->bitmap & ~bit;
  for (std::size_t i = 0, j = 0; i < n; ++i) {
    if (i == pos) continue;
    c->entries[j] = m->entries[i];
    entry_retain(c->entries[j++]);
  }
  return c;
}

const CtxValue* lookup(const CtxMap* m, std::uint64_t key) noexcept {
  return ctx_lookup(m, key);
}

/// The current slot: the innermost scope's, the running task's, or the thread's base one.
CtxWord* current_slot() noexcept {
  if (t_ctx_scope != nullptr) return t_ctx_scope;
  if (t_current != nullptr) return &t_current->context;
  return &t_ctx_base;
}

/// current_slot(), for a write: the base slot's release at thread exit is registered here.
CtxWord* current_slot_for_write() noexcept {
  CtxWord* slot = current_slot();
  if (slot == &t_ctx_base) {
    [[maybe_unused]] BaseContextRelease& registered = t_base_release;
  }
  return slot;
}

std::atomic<std::uint64_t> g_next_key{1};

}  // namespace

void ctx_value_release(CtxValue* v) noexcept {
  if (v->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete v;
}

std::uint64_t ctx_new_key() noexcept {
  return g_next_key.fetch_add(1, std::memory_order_relaxed);
}

const CtxValue* ctx_get_slow(CtxWord map, std::uint64_t key) noexcept {
  CtxGetCache& c = t_ctx_cache;
  c.frees = g_ctx_map_frees.load(std::memory_order_relaxed);
  c.value = lookup(as_map(map), key);
  c.map = map;
  c.key = key;
  return c.value;
}

std::shared_ptr<TokenState> ctx_set(std::uint64_t key, CtxValue* value) {
  struct Owned {
    CtxValue* v;
    ~Owned() {
      if (v != nullptr) ctx_value_release(v);
    }
  } owned{value};
  CtxWord* slot = current_slot_for_write();
  const void* identity = is_shared(*slot) ? static_cast<const void*>(as_impl(*slot)) : slot;
  CtxWord* map_slot = is_shared(*slot) ? &as_impl(*slot)->map : slot;
  auto token = std::make_shared<TokenState>();
  token->key = key;
  token->context = identity;
  CtxMap* old = as_map(*map_slot);
  if (const CtxValue* prev = lookup(old, key)) {
    token->old = const_cast<CtxValue*>(prev);
    token->old->refs.fetch_add(1, std::memory_order_relaxed);
  }
  CtxMap* next = assoc(old, key, std::exchange(owned.v, nullptr), 0);
  *map_slot = reinterpret_cast<CtxWord>(next);
  map_release(old);
  return token;
}

void ctx_reset(std::uint64_t key, TokenState& token) {
  if (token.used) throw RuntimeError("<Token> has already been used once");
  if (token.key != key) throw ValueError("<Token> was created by a different ContextVar");
  CtxWord* slot = current_slot_for_write();
  const void* identity = is_shared(*slot) ? static_cast<const void*>(as_impl(*slot)) : slot;
  if (token.context != identity) throw ValueError("<Token> was created in a different Context");
  CtxWord* map_slot = is_shared(*slot) ? &as_impl(*slot)->map : slot;
  CtxMap* old = as_map(*map_slot);
  CtxMap* next = nullptr;
  if (token.old != nullptr) {
    token.old->refs.fetch_add(1, std::memory_order_relaxed);
    next = assoc(old, key, token.old, 0);
  } else {
    next = dissoc(old, key, 0);
  }
  *map_slot = reinterpret_cast<CtxWord>(next);
  map_release(old);
  token.used = true;
}

void ctx_retain_map(CtxWord map) noexcept {
  map_retain(as_map(map));
}

void ctx_release_slow(CtxWord w) noexcept {
  if (is_shared(w)) {
    ContextImpl* c = as_impl(w);
    if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      map_release(as_map(c->map));
      delete c;
    }
    return;
  }
  map_release(as_map(w));
}

CtxWord* ctx_swap_scope(CtxWord* slot) noexcept {
  return std::exchange(t_ctx_scope, slot);
}

CtxHold::~CtxHold() {
  ctx_release(word);
}

}  // namespace weave::detail

namespace weave {

Context::Context() : impl_(new detail::ContextImpl) {}
Context::Context(const Context& o) noexcept : impl_(o.impl_) {
  impl_->refs.fetch_add(1, std::memory_order_relaxed);
}
Context& Context::operator=(const Context& o) noexcept {
  Context copy(o);
  std::swap(impl_, copy.impl_);
  return *this;
}
Context::~Context() {
  detail::ctx_release(reinterpret_cast<detail::CtxWord>(impl_) | 1);
}

detail::CtxWord Context::share() const noexcept {
  impl_->refs.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<detail::CtxWord>(impl_) | 1;
}

detail::CtxWord Context::enter() {
  if (impl_->entered.exchange(true, std::memory_order_acquire)) {
    throw RuntimeError("cannot enter context: <Context> is already entered");
  }
  return reinterpret_cast<detail::CtxWord>(impl_) | 1;
}

void Context::exit() noexcept {
  impl_->entered.store(false, std::memory_order_release);
}

Context copy_context() {
  auto* impl = new detail::ContextImpl;
  impl->map = detail::ctx_capture();
  return Context(impl);
}

}  // namespace weave

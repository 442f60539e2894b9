#pragma once
// How arguments and results cross the process boundary of a ProcessPoolExecutor.
//
// Writer and Reader are a small, stable vocabulary (nil, bool, integers, doubles, strings,
// array and map headers) over MessagePack, which the library encodes and decodes in its own
// sources; no MessagePack type appears here, so user code never depends on it. A value is a
// sequence of those items; Serializer<T> says which. Decoding checks every item's kind and
// range and throws weave::ValueError on a mismatch, so a wrong type never becomes a wrong value.
//
// Customization point: specialize weave::concurrent::Serializer<T> with
//   static void write(Writer&, const T&);
//   static T read(Reader&);
// (read must consume exactly what write produced). Built in: bool, integers, floating point,
// enums, std::string, std::vector, std::array, std::pair, std::tuple, std::optional, std::map,
// std::unordered_map, and plain function pointers (translated so that they survive ASLR).

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weave/errors.hpp"

namespace weave::concurrent {

template <class T, class Enable = void>
struct Serializer;  // specialize for your types; see above

/// Appends MessagePack items to a byte string.
class Writer {
 public:
  explicit Writer(std::string& out) noexcept : out_(&out) {}

  void write_nil();
  void write_bool(bool v);
  void write_int(std::int64_t v);
  void write_uint(std::uint64_t v);
  void write_double(double v);
  void write_string(std::string_view v);
  /// Starts an array of `n` items: the next `n` written items are its elements.
  void write_array(std::size_t n);
  /// Starts a map of `n` entries: the next 2n items are key, value, key, value...
  void write_map(std::size_t n);

  template <class T>
  void write(const T& value) {
    Serializer<T>::write(*this, value);
  }

 private:
  std::string* out_;
};

/// Reads back, in order, the items a Writer wrote. Every read throws ValueError if the next
/// item is of another kind (or out of range) or if there is none.
class Reader {
 public:
  explicit Reader(std::string_view bytes);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  void read_nil();
  bool next_is_nil();
  bool read_bool();
  std::int64_t read_int();
  std::uint64_t read_uint();
  double read_double();
  std::string read_string();
  /// Returns the element count; the elements are the next items.
  std::size_t read_array();
  /// Returns the entry count; keys and values follow, alternating.
  std::size_t read_map();

  template <class T>
  T read() {
    return Serializer<T>::read(*this);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A type a process pool can send: Serializer<T> is specialized for it.
template <class T>
concept serializable = requires(Writer& w, Reader& r, const T& v) {
  Serializer<T>::write(w, v);
  { Serializer<T>::read(r) } -> std::same_as<T>;
};

/// The bytes of `value`, and back; handy to test a Serializer specialization.
template <class T>
std::string serialize(const T& value) {
  std::string out;
  Writer w(out);
  w.write(value);
  return out;
}
template <class T>
T deserialize(std::string_view bytes) {
  Reader r(bytes);
  return r.read<T>();
}

namespace detail {
/// Code addresses travel as (module, offset from the module's load address); see
/// code_address.cpp. read_code_address() throws ValueError for an address that is not code
/// of a module loaded in this process.
void write_code_address(Writer& w, std::uintptr_t address);
std::uintptr_t read_code_address(Reader& r);

template <class T>
T checked_narrow(auto v) {
  if (!std::in_range<T>(v)) throw ValueError("serialized integer out of range");
  return static_cast<T>(v);
}
}  // namespace detail

template <>
struct Serializer<bool> {
  static void write(Writer& w, bool v) { w.write_bool(v); }
  static bool read(Reader& r) { return r.read_bool(); }
};

template <class T>
struct Serializer<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static void write(Writer& w, T v) {
    if constexpr (std::is_signed_v<T>) {
      w.write_int(v);
    } else {
      w.write_uint(v);
    }
  }
  static T read(Reader& r) {
    if constexpr (std::is_signed_v<T>) {
      return detail::checked_narrow<T>(r.read_int());
    } else {
      return detail::checked_narrow<T>(r.read_uint());
    }
  }
};

template <class T>
struct Serializer<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static void write(Writer& w, T v) { w.write_double(static_cast<double>(v)); }
  static T read(Reader& r) { return static_cast<T>(r.read_double()); }
};

template <class T>
struct Serializer<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  static void write(Writer& w, T v) { Serializer<U>::write(w, static_cast<U>(v)); }
  static T read(Reader& r) { return static_cast<T>(Serializer<U>::read(r)); }
};

template <>
struct Serializer<std::string> {
  static void write(Writer& w, const std::string& v) { w.write_string(v); }
  static std::string read(Reader& r) { return r.read_string(); }
};

template <class T, class A>
struct Serializer<std::vector<T, A>> {
  static void write(Writer& w, const std::vector<T, A>& v) {
    w.write_array(v.size());
    for (const auto& x : v) Serializer<T>::write(w, x);
  }
  static std::vector<T, A> read(Reader& r) {
    std::vector<T, A> v;
    std::size_t n = r.read_array();
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(Serializer<T>::read(r));
    return v;
  }
};

template <class T, std::size_t N>
struct Serializer<std::array<T, N>> {
  static void write(Writer& w, const std::array<T, N>& v) {
    w.write_array(N);
    for (const auto& x : v) Serializer<T>::write(w, x);
  }
  static std::array<T, N> read(Reader& r) {
    if (r.read_array() != N) throw ValueError("serialized array has the wrong length");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<T, N>{((void)I, Serializer<T>::read(r))...};
    }
    (std::make_index_sequence<N>());
  }
};

template <class... T>
struct Serializer<std::tuple<T...>> {
  static void write(Writer& w, const std::tuple<T...>& v) {
    w.write_array(sizeof...(T));
    std::apply([&](const auto&... x) { (Serializer<T>::write(w, x), ...); }, v);
  }
  static std::tuple<T...> read(Reader& r) {
    if (r.read_array() != sizeof...(T)) throw ValueError("serialized tuple has the wrong size");
    return std::tuple<T...>{Serializer<T>::read(r)...};  // braces: read left to right
  }
};

template <class A, class B>
struct Serializer<std::pair<A, B>> {
  static void write(Writer& w, const std::pair<A, B>& v) {
    w.write_array(2);
    Serializer<A>::write(w, v.first);
    Serializer<B>::write(w, v.second);
  }
  static std::pair<A, B> read(Reader& r) {
    if (r.read_array() != 2) throw ValueError("serialized pair has the wrong size");
    return std::pair<A, B>{Serializer<A>::read(r), Serializer<B>::read(r)};
  }
};

template <class T>
struct Serializer<std::optional<T>> {
  static void write(Writer& w, const std::optional<T>& v) {
    if (v) {
      Serializer<T>::write(w, *v);
    } else {
      w.write_nil();
    }
  }
  static std::optional<T> read(Reader& r) {
    if (r.next_is_nil()) {
      r.read_nil();
      return std::nullopt;
    }
    return Serializer<T>::read(r);
  }
};

namespace detail {
template <class M>
struct MapSerializer {
  static void write(Writer& w, const M& m) {
    w.write_map(m.size());
    for (const auto& [k, v] : m) {
      Serializer<typename M::key_type>::write(w, k);
      Serializer<typename M::mapped_type>::write(w, v);
    }
  }
  static M read(Reader& r) {
    M m;
    std::size_t n = r.read_map();
    for (std::size_t i = 0; i < n; ++i) {
      auto k = Serializer<typename M::key_type>::read(r);
      m.emplace(std::move(k), Serializer<typename M::mapped_type>::read(r));
    }
    return m;
  }
};
}  // namespace detail

template <class K, class V, class C, class A>
struct Serializer<std::map<K, V, C, A>> : detail::MapSerializer<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct Serializer<std::unordered_map<K, V, H, E, A>>
    : detail::MapSerializer<std::unordered_map<K, V, H, E, A>> {};

template <class R, class... P>
struct Serializer<R (*)(P...)> {
  using Fn = R (*)(P...);
  static void write(Writer& w, Fn fn) {
    detail::write_code_address(w, reinterpret_cast<std::uintptr_t>(fn));
  }
  static Fn read(Reader& r) { return reinterpret_cast<Fn>(detail::read_code_address(r)); }
};

}  // namespace weave::concurrent

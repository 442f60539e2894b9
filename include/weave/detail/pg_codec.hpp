#pragma once
// weave::pg's conversions between C++ values and PostgreSQL's formats, included by pg.hpp.
// Parameters are encoded eagerly (before the query's coroutine starts), so that a temporary
// argument never has to outlive the call, in the text format; results are decoded from the text
// or binary format the server sent (binary for statements whose every column type has a binary
// decoder here, see binary_result_type).

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace weave::pg {

/// A client-side problem, asyncpg's InterfaceError: misuse, a closed connection, bad data.
class InterfaceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A value that cannot become the requested C++ type (asyncpg's DataError), e.g. NULL read into
/// a non-optional; the message names the column.
class DataError : public InterfaceError {
 public:
  using InterfaceError::InterfaceError;
};

/// bytea: raw bytes, kept apart from text so that neither is mistaken for the other.
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

/// One field of a result row as the server sent it.
struct Field {
  std::optional<std::string_view> text;  ///< the value's bytes, nullopt for NULL
  unsigned oid = 0;                      ///< the column's type
  std::string_view column;               ///< for error messages
  bool binary = false;                   ///< `text` is in the binary format of `oid`
};

/// One encoded parameter: its text (nullopt for NULL) and the type the server is told (0 lets
/// the server infer it from the query, as for text and time values).
struct Param {
  std::optional<std::string> text;
  unsigned oid = 0;
};
using Params = std::vector<Param>;

namespace detail {
using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

Param encode(bool v);
Param encode(std::int16_t v);
Param encode(std::int32_t v);
Param encode(std::int64_t v);
Param encode(long long v);
Param encode(double v);
Param encode(float v);
Param encode(std::string_view v);
Param encode(const Bytes& v);
Param encode(std::chrono::sys_days v);
Param encode_timestamp(Timestamp v);
Param encode_interval(std::chrono::microseconds v);
/// An array literal from encoded elements; `element_oid` picks the array type.
Param encode_array(const std::vector<Param>& elements, unsigned element_oid);

inline Param encode(const std::string& v) {
  return encode(std::string_view(v));
}
inline Param encode(const char* v) {
  return encode(std::string_view(v));
}
inline Param encode(std::nullopt_t) {
  return Param{};
}
template <class D>
Param encode(std::chrono::time_point<std::chrono::system_clock, D> v) {
  return encode_timestamp(std::chrono::time_point_cast<std::chrono::microseconds>(v));
}
template <class R, class P>
Param encode(std::chrono::duration<R, P> v) {
  return encode_interval(std::chrono::duration_cast<std::chrono::microseconds>(v));
}
template <class T>
Param encode(const std::optional<T>& v) {
  if (v) return encode(*v);
  const unsigned oid = encode(T{}).oid;  // NULL, typed as T is
  return Param{std::nullopt, oid};
}
template <class T>
Param encode(const std::vector<T>& v) {
  std::vector<Param> elements;
  elements.reserve(v.size());
  for (const auto& e : v) elements.push_back(encode(e));
  using E = std::remove_cvref_t<T>;
  unsigned oid = v.empty() ? encode(E{}).oid : elements.front().oid;
  return encode_array(elements, oid);
}

template <class... A>
Params encode_all(const A&... args) {
  Params params;
  params.reserve(sizeof...(A));
  (params.push_back(encode(args)), ...);
  return params;
}

/// Rows for COPY, encoded eagerly into one buffer: per row its value count, then per value a
/// tag and the C++ value's own representation, which copy_records_in turns into COPY's binary
/// format (when every column's type takes its values) or its text format.
struct CopyRecords {
  enum Tag : char { kNull, kBool, kInteger, kReal, kText, kBytes };
  std::string data;
  std::size_t rows = 0;

  void begin_row(std::size_t values) {
    const auto n = static_cast<std::uint16_t>(values);
    data.append(reinterpret_cast<const char*>(&n), sizeof n);
    ++rows;
  }
  void put_null() { data += static_cast<char>(kNull); }
  void put_bool(bool v) {
    data += static_cast<char>(kBool);
    data += v ? '\1' : '\0';
  }
  void put_integer(std::int64_t v) { put_raw(kInteger, &v, sizeof v); }
  void put_real(double v) { put_raw(kReal, &v, sizeof v); }
  void put_text(std::string_view v, Tag tag = kText) {
    const auto n = static_cast<std::uint32_t>(v.size());
    put_raw(tag, &n, sizeof n);
    data.append(v.data(), v.size());
  }

 private:
  void put_raw(Tag tag, const void* p, std::size_t n) {
    data += static_cast<char>(tag);
    data.append(static_cast<const char*>(p), n);
  }
};

template <class T>
void copy_put(CopyRecords& r, const T& v);
template <class T>
void copy_put(CopyRecords& r, const std::optional<T>& v) {
  if (v) {
    copy_put(r, *v);
  } else {
    r.put_null();
  }
}
/// One value into `r`: integers, double, bool, text and bytes as themselves, anything else as
/// the text encode() gives it.
template <class T>
void copy_put(CopyRecords& r, const T& v) {
  using U = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    r.put_bool(v);
  } else if constexpr (std::is_same_v<U, std::int16_t> || std::is_same_v<U, std::int32_t> ||
                       std::is_same_v<U, std::int64_t> || std::is_same_v<U, long long>) {
    r.put_integer(static_cast<std::int64_t>(v));
  } else if constexpr (std::is_same_v<U, double>) {
    r.put_real(v);
  } else if constexpr (std::is_same_v<U, Bytes>) {
    r.put_text(v.data, CopyRecords::kBytes);
  } else if constexpr (std::is_convertible_v<const U&, std::string_view>) {
    r.put_text(std::string_view(v));
  } else {
    const Param p = encode(v);
    if (p.text) {
      r.put_text(*p.text);
    } else {
      r.put_null();
    }
  }
}

/// Throws DataError naming the column when the field is NULL.
std::string_view require_text(const Field& f);

/// The big-endian integer at `p`.
inline std::uint32_t load_be32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap32(v);
}
inline std::uint64_t load_be64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}
/// A binary int2/int4/int8/oid field read straight into `out`; false for anything else (NULL,
/// text, another type, a value out of range), which the full decoder then handles or reports.
/// Inline: it runs once per field of a result.
template <class I>
bool binary_integer_fast(const Field& f, I& out) noexcept {
  if (!f.binary || !f.text) return false;
  const char* p = f.text->data();
  const std::size_t n = f.text->size();
  long long v = 0;
  if (f.oid == 23 && n == 4) {
    v = static_cast<std::int32_t>(load_be32(p));
  } else if (f.oid == 20 && n == 8) {
    v = static_cast<std::int64_t>(load_be64(p));
  } else if (f.oid == 21 && n == 2) {
    std::uint16_t u;
    std::memcpy(&u, p, sizeof u);
    v = static_cast<std::int16_t>(__builtin_bswap16(u));
  } else if (f.oid == 26 && n == 4) {
    v = load_be32(p);
  } else {
    return false;
  }
  if (!std::in_range<I>(v)) return false;
  out = static_cast<I>(v);
  return true;
}

// The full decoders: the text format, conversions between types, and the errors.
void decode_full(const Field& f, bool& out);
void decode_full(const Field& f, std::int16_t& out);
void decode_full(const Field& f, std::int32_t& out);
void decode_full(const Field& f, std::int64_t& out);
void decode_full(const Field& f, long long& out);
void decode_full(const Field& f, double& out);
void decode_full(const Field& f, float& out);

inline void decode(const Field& f, bool& out) {
  if (f.binary && f.oid == 16 && f.text && f.text->size() == 1) {
    out = (*f.text)[0] != 0;
    return;
  }
  decode_full(f, out);
}
inline void decode(const Field& f, std::int16_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, std::int32_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, std::int64_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, long long& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, double& out) {
  if (f.binary && f.oid == 701 && f.text && f.text->size() == 8) {
    const std::uint64_t bits = load_be64(f.text->data());
    std::memcpy(&out, &bits, sizeof out);
    return;
  }
  decode_full(f, out);
}
inline void decode(const Field& f, float& out) {
  if (f.binary && f.oid == 700 && f.text && f.text->size() == 4) {
    const std::uint32_t bits = load_be32(f.text->data());
    std::memcpy(&out, &bits, sizeof out);
    return;
  }
  decode_full(f, out);
}
void decode(const Field& f, std::string& out);
/// The text without a copy, valid as long as the row's result: for text-like types (text,
/// varchar, char(n), name, json, jsonb) and for the types that always arrive as text (numeric,
/// inet, ...). Others (integers, bytea, time values) raise DataError: read them as std::string.
void decode(const Field& f, std::string_view& out);
void decode(const Field& f, Bytes& out);
void decode(const Field& f, std::chrono::sys_days& out);
void decode(const Field& f, Timestamp& out);
void decode(const Field& f, std::chrono::microseconds& out);
/// The elements of a one-dimensional array literal, NULL elements as nullopt.
std::vector<std::optional<std::string>> split_array(const Field& f);

/// True when results of type `oid` are decoded from the binary format (scalars, their
/// one-dimensional arrays, text-like types); a statement with any other column stays text.
bool binary_result_type(unsigned oid) noexcept;

/// The elements of a binary array, in order, as binary fields of the element type; they point
/// into the field's bytes. Errors: DataError for a malformed or multi-dimensional array.
class BinaryArray {
 public:
  explicit BinaryArray(const Field& f);
  std::size_t size() const noexcept { return count_; }
  /// The next element; false after the last.
  bool next(Field& element) {
    if (read_ == count_) return false;
    if (rest_.size() < 4) malformed();
    const auto len = static_cast<std::int32_t>(big_endian32(rest_.data()));
    rest_.remove_prefix(4);
    element.oid = element_oid_;
    element.column = column_;
    element.binary = true;
    if (len < 0) {
      element.text.reset();
    } else {
      if (rest_.size() < static_cast<std::size_t>(len)) malformed();
      element.text = rest_.substr(0, static_cast<std::size_t>(len));
      rest_.remove_prefix(static_cast<std::size_t>(len));
    }
    ++read_;
    return true;
  }
  static std::uint32_t big_endian32(const char* p) noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
  }

 private:
  [[noreturn]] void malformed() const;
  std::string_view rest_;
  std::string_view column_;
  unsigned element_oid_ = 0;
  std::size_t count_ = 0, read_ = 0;
};

template <class D>
requires(!std::is_same_v<D, std::chrono::microseconds>) void decode(
    const Field& f, std::chrono::time_point<std::chrono::system_clock, D>& out) {
  Timestamp t;
  decode(f, t);
  out = std::chrono::time_point_cast<D>(t);
}
template <class R, class P>
requires(!std::is_same_v<std::chrono::duration<R, P>, std::chrono::microseconds>) void decode(
    const Field& f, std::chrono::duration<R, P>& out) {
  std::chrono::microseconds us;
  decode(f, us);
  out = std::chrono::duration_cast<std::chrono::duration<R, P>>(us);
}
template <class T>
void decode(const Field& f, std::optional<T>& out) {
  if (!f.text) {
    out.reset();
    return;
  }
  T v{};
  decode(f, v);
  out = std::move(v);
}
template <class T>
void decode(const Field& f, std::vector<T>& out) {
  out.clear();
  if (f.binary) {
    BinaryArray elements(f);
    out.reserve(elements.size());
    Field element;
    while (elements.next(element)) {
      T v{};
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        if (binary_integer_fast(element, v)) {
          out.push_back(v);
          continue;
        }
      }
      decode(element, v);
      out.push_back(std::move(v));
    }
    return;
  }
  for (const auto& e : split_array(f)) {
    Field element{e ? std::optional<std::string_view>(*e) : std::nullopt, 0, f.column};
    T v{};
    decode(element, v);
    out.push_back(std::move(v));
  }
}

/// The host names of a libpq conninfo (keywords or URI; `PGHOST` when it names none) resolved
/// with getaddrinfo, as the `host`, `hostaddr` and `port` keywords to pass after it: each
/// name becomes one entry per address it has (libpq tries them in order, as it would its own
/// lookups), `host` stays for TLS verification, and a socket directory or a literal address keeps
/// an empty `hostaddr`. Empty when there is nothing to resolve, when `hostaddr` is given, when
/// the conninfo does not parse (libpq then reports it) or when no name resolves (libpq then
/// reports that). It blocks: connect() runs it off the loop thread.
std::vector<std::pair<std::string, std::string>> resolve_hosts(const std::string& conninfo);
}  // namespace detail

}  // namespace weave::pg
